"""An app command in its real sandbox: bubblewrap namespaces, its own unprivileged user,
no capabilities, no_new_privs, the seccomp allow-list, cgroup limits, and a view of
nothing but its image, /usr and its own data directory."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeward.device.apps import cgroups, sandbox
from edgeward.device.apps.syscalls import ALLOWED, FORBIDDEN
from edgeward.trust.appmanifest import parse
from tests.conftest import REQUIRE_REAL, require_tool

USER = sandbox.AppUser(23456, 23456)


@pytest.fixture
def app() -> Iterator[tuple[Path, Path]]:
    require_tool("bwrap")
    if os.geteuid() != 0:
        message = "the agent runs as root to start sandboxes"
        if REQUIRE_REAL:
            pytest.fail(message)
        pytest.skip(message)
    # the app's user must be able to reach its image and data (pytest's tmp is 0700)
    root = Path(tempfile.mkdtemp(prefix="edgeward-sandbox-", dir="/var/tmp"))
    root.chmod(0o755)
    try:
        yield _make(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        for name in ("probe", "forker"):
            cgroups.remove(cgroups.existing(name))


def _make(tmp_path: Path) -> tuple[Path, Path]:
    image = tmp_path / "image"
    (image / "bin").mkdir(parents=True)
    probe = image / "bin" / "probe"
    probe.write_text("#!/bin/sh\nexec /bin/sh -c \"$1\"\n")
    probe.chmod(0o755)
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, USER.uid, USER.gid)
    return image, data


def _run(app: tuple[Path, Path], script: str, manifest: bytes = b"",
         name: str = "probe") -> tuple[int, str]:
    m = parse(f'name = "{name}"\nversion = "1"\npublisher = "acme"\nsummary = "p"\n'
              .encode() + manifest)
    done = sandbox.run(m, app[0], app[1], USER, ["bin/probe", script])
    return done.returncode, done.stdout.decode() + done.stderr.decode()


def test_the_app_runs_as_its_own_user_without_privileges(app: tuple[Path, Path]) -> None:
    code, out = _run(app, "id -u; id -g; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' "
                          "/proc/self/status; echo pid=$$; hostname")
    assert code == 0, out
    lines = out.split()
    assert lines[0] == str(USER.uid) and lines[1] == str(USER.gid)
    status = dict(line.split(":\t") for line in out.splitlines() if ":\t" in line)
    assert status["CapEff"] == "0000000000000000" and status["CapBnd"] == "0000000000000000"
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
    pid = int(next(word for word in lines if word.startswith("pid="))[4:])
    assert pid < 10  # its own PID namespace
    assert lines[-1] == "probe"  # its own UTS namespace


def test_the_app_sees_only_its_view(app: tuple[Path, Path]) -> None:
    secret = app[0].parent / "agent-state"
    secret.write_text("not for apps")
    code, out = _run(app, f"ls /; cat /etc/shadow; cat {secret}; ls /app; "
                          "touch /data/mine && echo wrote-data; touch /app/x || echo ro-app; "
                          "touch /usr/x || echo ro-usr")
    assert "wrote-data" in out and "ro-app" in out and "ro-usr" in out
    assert "not for apps" not in out
    listing = set(out.split("\n", 1)[0].split()) if out else set()
    assert "etc" not in listing and "home" not in listing and "root" not in listing
    assert (app[1] / "mine").stat().st_uid == USER.uid


def test_forbidden_calls_are_denied(app: tuple[Path, Path]) -> None:
    assert not set(FORBIDDEN) & set(ALLOWED)
    code, out = _run(app, "unshare -U true && echo UNSHARED; "
                          "python3 -c 'import ctypes,os; l=ctypes.CDLL(None,use_errno=True); "
                          "r=l.syscall(165,b\"x\",b\"/tmp\",b\"tmpfs\",0,0); "
                          "print(\"mount\", r, os.strerror(ctypes.get_errno()))'")
    assert "UNSHARED" not in out
    assert "mount -1 Operation not permitted" in out


def test_no_network_without_the_plug(app: tuple[Path, Path]) -> None:
    code, out = _run(app, "cat /proc/net/dev | tail -n +3 | cut -d: -f1")
    assert out.split() == ["lo"]
    code, out = _run(app, "cat /proc/net/dev | tail -n +3 | cut -d: -f1",
                     b'plugs = ["network"]\n')
    assert len(out.split()) > 1 or out.split() != ["lo"]


def test_memory_and_pids_limits_hold(app: tuple[Path, Path]) -> None:
    grab = "python3 -c 'b = bytearray({} * 1024 * 1024); print(\"allocated\")'"
    code, out = _run(app, grab.format(100), b'[resources]\nmemory = "256M"\n')
    assert code == 0 and "allocated" in out  # room enough: it runs
    code, out = _run(app, grab.format(200), b'[resources]\nmemory = "32M"\n')
    assert code == 137 and "allocated" not in out  # killed at its 32 MiB limit
    code, out = _run(app, "for i in $(seq 20); do sleep 1 & done; wait; echo done",
                     b'[resources]\npids = 8\n', name="forker")  # a cgroup of its own
    assert "Cannot fork" in out, out
    group = cgroups.create("probe", 32 << 20, 0.5, 8)
    assert group.paths and all(p.exists() for p in group.paths)
    assert group == cgroups.existing("probe")


def test_an_interface_not_granted_is_not_given(app: tuple[Path, Path]) -> None:
    m = parse(b'name = "probe"\nversion = "1"\npublisher = "acme"\nsummary = "p"\n'
              b'plugs = ["network"]\n')
    script = ["bin/probe", "cat /proc/net/dev | tail -n +3 | cut -d: -f1"]
    withheld = sandbox.run(m, app[0], app[1], USER, script, granted=set())
    assert withheld.stdout.decode().split() == ["lo"]  # asked for, not granted: no network
    given = sandbox.run(m, app[0], app[1], USER, script, granted={"network"})
    assert given.stdout.decode().split() != ["lo"]
