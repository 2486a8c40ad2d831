"""The first process of a sandboxed app, run as root by the agent:

join the app's cgroups, drop to the app's user and group (no supplementary
groups), then exec bubblewrap, which builds the sandbox unprivileged.

``python -m edgeward.device.apps.launch UID GID PROCS[,PROCS...] -- bwrap ...``
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> None:
    if len(argv) < 5 or argv[3] != "--":
        sys.exit("usage: launch UID GID CGROUP_PROCS[,...] -- COMMAND...")
    uid, gid, procs, command = int(argv[0]), int(argv[1]), argv[2], argv[4:]
    for path in filter(None, procs.split(",")):
        with open(path, "w") as f:
            f.write(str(os.getpid()))
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid:
        sys.exit("could not drop to the app's user")
    os.execvp(command[0], command)  # noqa: S606 (argv, no shell)


if __name__ == "__main__":
    main(sys.argv[1:])
