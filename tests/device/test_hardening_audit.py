"""The hardening audit end to end on a virtual gateway: the shipped OS image, one built
with a serial getty, a serial console, an empty root password and a careless sshd
config, an open debug port; through ``edgeward device audit --json``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeward.board import fuses, mounts
from edgeward.board.virtual import VirtualBoard
from edgeward.device.boot.chain import boot
from edgeward.device.hardening.booted import audit_board, verified_root
from edgeward.device.hardening.collect import listening
from edgeward.device.hardening.finding import Finding
from edgeward.factory.station import Factory
from edgeward.release import osbuild, osimage
from edgeward.release.osbuild import Build
from tests.conftest import require_root, require_tool


@pytest.fixture(autouse=True)
def _needs_mounts() -> None:
    require_root("mounting the booted rootfs read-only")
    require_tool("mount")


def run_audit(board: VirtualBoard, *args: str, code: int = 0) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "edgeward", "device", "audit", "--device",
                             str(board.root), "--json", *args], capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == code, result.stderr
    return json.loads(result.stdout) if code == 0 else {"stderr": result.stderr}


def os_checks(report: dict[str, Any]) -> set[str]:
    """The findings about the OS (the sockets listening on the machine running the
    tests are not the image's)."""
    return {f["check"] for f in report["findings"] if not f["check"].startswith("services.")}


def no_audit_mounts() -> bool:
    return not [p for p in mounts.mounts_under(Path(tempfile.gettempdir()))
                if "edgeward-audit-" in str(p)]


def test_the_shipped_image_audits_clean(gateway: VirtualBoard) -> None:
    assert boot(gateway).verdict == "booted"
    report = run_audit(gateway)
    assert os_checks(report) == set()
    assert set(report["summary"]) == {"high", "medium", "low"}
    assert all(Finding.from_dict(f).check.startswith("services.")
               for f in report["findings"])
    assert no_audit_mounts()


def careless_build(factory: Factory, out: Path) -> Build:
    """An OS release as a careless integrator would build it, with the release tooling."""
    tree = out.parent / "tree"
    (tree / "usr/bin").mkdir(parents=True)
    (tree / "usr/bin/helper").write_text("#!/bin/sh\nexec /bin/sh\n")
    (tree / "usr/bin/helper").chmod(0o4755)
    (tree / "usr/lib/drop").mkdir(parents=True)
    (tree / "usr/lib/drop").chmod(0o777)
    return osbuild.build(
        out, "1.0.1", 1, factory.model, factory.key("kernel", None), b"{}", tree=tree,
        files={"etc/inittab": b"T0:23:respawn:/sbin/getty -L ttyS0 115200 vt100\n",
               "etc/shadow": b"root::19000:0:99999:7:::\nedgeward:!:19000::::::\n",
               "etc/ssh/sshd_config": b"Include /etc/ssh/sshd_config.d/*.conf\n"
                                      b"PermitRootLogin yes\nPasswordAuthentication no\n",
               "etc/ssh/sshd_config.d/10-vendor.conf": b"PasswordAuthentication yes\n"},
        cmdline=f"console=ttyS0,115200n8 {osimage.CMDLINE}")


def install(board: VirtualBoard, build: Build) -> None:
    board.write("kernel_a", build.kernel)
    board.write("rootfs_a", build.rootfs)


def test_a_careless_image_is_found_out(gateway: VirtualBoard, factory: Factory,
                                       tmp_path: Path) -> None:
    install(gateway, careless_build(factory, tmp_path / "build"))
    assert boot(gateway).verdict == "booted"  # signed and verified: the boot has no say
    report = run_audit(gateway)
    assert {"console.getty", "console.cmdline", "accounts.empty-password", "ssh.root-login",
            "ssh.password-auth", "files.setuid", "files.world-writable"} <= os_checks(report)
    by_check = {f["check"]: f for f in report["findings"]}
    assert "ttyS0" in by_check["console.getty"]["detail"]
    assert "10-vendor.conf line 1" in by_check["ssh.password-auth"]["detail"]
    assert by_check["files.setuid"]["detail"].startswith("/usr/bin/helper")
    assert by_check["accounts.empty-password"]["advice"]
    assert report["summary"]["high"] >= 5
    assert no_audit_mounts()


def test_an_open_debug_port_is_flagged(gateway: VirtualBoard) -> None:
    """The OS stage refuses to run with the debug port open, but the rootfs was verified
    before it: the audit runs and says why."""
    bank = bytearray((gateway.root / "fuses.bin").read_bytes())
    bank[fuses.FIELDS["debug_disable"][0]] ^= 0x01
    (gateway.root / "fuses.bin").write_bytes(bytes(bank))
    assert boot(gateway).refused_stage == "os"
    report = run_audit(gateway)
    assert os_checks(report) == {"fuse.debug"}
    debug = next(f for f in report["findings"] if f["check"] == "fuse.debug")
    assert debug["severity"] == "high" and "Burn debug_disable" in debug["advice"]


def test_the_audit_needs_a_boot_and_a_rootfs_that_still_matches(gateway: VirtualBoard
                                                                 ) -> None:
    gateway.power_off()
    assert "boot the gateway first" in run_audit(gateway, code=6)["stderr"]
    boot(gateway)
    with gateway.partition_path("rootfs_a").open("r+b") as f:  # altered after the boot
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert "does not match" in run_audit(gateway, code=4)["stderr"]
    assert no_audit_mounts()


def test_the_rootfs_is_unmounted_whatever_happens(gateway: VirtualBoard) -> None:
    boot(gateway)
    with pytest.raises(RuntimeError), verified_root(gateway) as (root, cmdline):
        assert (root / "etc/os-release").is_file() and "root=/dev/dm-0" in cmdline
        assert os.path.ismount(root)
        seen = root
        raise RuntimeError("the audit failed half way")
    assert not os.path.ismount(seen) and not seen.exists()


@pytest.fixture
def backdoor() -> Iterator[int]:
    """A real listener on every address, as a backdoor opens one."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        s.listen()
        yield s.getsockname()[1]


def test_an_unexpected_listener_is_flagged_unless_allowed(gateway: VirtualBoard,
                                                          backdoor: int) -> None:
    mine = [s for s in listening() if s.port == backdoor]
    assert mine and mine[0].pid == os.getpid() and mine[0].process
    boot(gateway)
    flagged = [f for f in audit_board(gateway) if f"0.0.0.0:{backdoor} " in f.detail]
    assert [(f.check, f.severity) for f in flagged] == [("services.unexpected", "high")]
    report = run_audit(gateway, "--allow", f"tcp/{backdoor}")
    assert not [f for f in report["findings"] if f":{backdoor} " in f["detail"]]
    assert "not a port number" in run_audit(gateway, "--allow", "x:99999", code=3)["stderr"]


def test_the_human_report_is_a_table_with_advice(gateway: VirtualBoard, factory: Factory,
                                                 tmp_path: Path) -> None:
    install(gateway, careless_build(factory, tmp_path / "build"))
    boot(gateway)
    result = subprocess.run([sys.executable, "-m", "edgeward", "device", "audit", "--device",
                             str(gateway.root)], capture_output=True, text=True, timeout=300,
                            check=False, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "console.getty" in result.stdout and "PermitRootLogin no" in result.stdout
