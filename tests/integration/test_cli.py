"""End to end through the command line, as an operator runs it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edgeward.board import mounts
from tests.conftest import remove_scratch, require_tool, scratch_dir

HEX_NONCE = "ab" * 32


def edgeward(*args: str | Path, ok: bool = True, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "edgeward", *map(str, args)],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, **(env or {})})
    if ok:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("mksquashfs")
    root = tmp_path_factory.mktemp("cli")
    secret = root / "passphrase"
    secret.write_text("a long offline passphrase\n")
    edgeward("factory", "init", root / "factory", "--passphrase-file", secret)
    for serial in ("c-1", "c-2"):
        edgeward("factory", "provision", "--factory", root / "factory", "--device",
                 root / serial, "--serial", serial, "--passphrase-file", secret)
    return root


def test_boot_json_reports_stages_slot_measurements_and_verdict(fleet: Path) -> None:
    report = json.loads(edgeward("device", "boot", "--device", fleet / "c-1", "--json").stdout)
    assert report["verdict"] == "booted" and report["slot"] == "a"
    assert [s["name"] for s in report["stages"]] == ["rom", "bl2", "kernel", "os"]
    assert all(s["ok"] for s in report["stages"])
    assert [e["component"] for e in report["events"]] == [
        "bl2", "kernel-bundle", "rootfs", "os-state"]
    assert len(report["register"]) == 96


def test_attest_and_verify_from_the_cli(fleet: Path, tmp_path: Path) -> None:
    edgeward("device", "boot", "--device", fleet / "c-2")
    out = json.loads(edgeward("device", "attest", "--device", fleet / "c-2", "--nonce",
                              HEX_NONCE, "--out", tmp_path / "q.json", "--json").stdout)
    assert out["serial"] == "c-2" and out["nonce"] == HEX_NONCE
    common = ["--cert", fleet / "c-2/data/system/identity/device.pem",
              "--ca", fleet / "factory/ca.pem",
              "--known-good", fleet / "factory/release/known-good.json"]
    verdict = json.loads(edgeward("attestation", "verify", "--quote", tmp_path / "q.json",
                                  "--nonce", HEX_NONCE, *common, "--json").stdout)
    assert verdict["verdict"] == "attested" and verdict["serial"] == "c-2"
    stale = edgeward("attestation", "verify", "--quote", tmp_path / "q.json",
                     "--nonce", "cd" * 32, *common, ok=False)
    assert stale.returncode == 4 and "nonce" in stale.stderr
    assert "Traceback" not in stale.stderr
    wrong_cert = edgeward("attestation", "verify", "--quote", tmp_path / "q.json",
                          "--nonce", HEX_NONCE, "--cert",
                          fleet / "c-1/data/system/identity/device.pem",
                          *common[2:], ok=False)
    assert wrong_cert.returncode == 4


def test_tampered_kernel_refuses_to_boot_with_exit_5(fleet: Path, tmp_path: Path) -> None:
    device = tmp_path / "tampered"
    shutil.copytree(fleet / "c-1", device)
    kernel = device / "flash/kernel_a.img"
    data = bytearray(kernel.read_bytes())
    data[len(data) // 3] ^= 0x01
    kernel.write_bytes(bytes(data))
    result = edgeward("device", "boot", "--device", device, "--json", ok=False)
    assert result.returncode == 5
    report = json.loads(result.stdout)
    assert report["verdict"] == "refused" and report["refused_stage"] == "bl2"
    assert [s["name"] for s in report["stages"]] == ["rom", "bl2"]
    assert "boot refused at bl2" in result.stderr
    attest = edgeward("device", "attest", "--device", device, "--nonce", HEX_NONCE, ok=False)
    assert attest.returncode == 4 and "refused at bl2" in attest.stderr


def test_status_json_never_shows_the_huk(fleet: Path) -> None:
    from edgeward.board.virtual import VirtualBoard

    board = VirtualBoard.open(fleet / "c-1")
    board.power_on()
    huk = board.read_huk().hex()
    raw = edgeward("device", "status", "--device", fleet / "c-1", "--json").stdout
    assert huk not in raw
    info = json.loads(raw)
    assert info["serial"] is None  # powered on, not booted: the data area is locked
    assert info["data_area"]["unlocked"] is False
    assert info["fuses"]["debug_disable"] is True
    assert info["slots"]["a"].startswith("1.0.0") and info["slots"]["b"] is None
    assert info["fuses"]["huk_burnt"] is True
    edgeward("device", "boot", "--device", fleet / "c-1")
    info = json.loads(edgeward("device", "status", "--device", fleet / "c-1", "--json").stdout)
    assert info["serial"] == "c-1" and info["model"] == "ew-gw1"
    assert info["data_area"]["unlocked"] is True


def test_refusals_are_one_clear_line_with_their_exit_codes(fleet: Path, tmp_path: Path) -> None:
    cases = [
        (["factory", "provision", "--factory", fleet / "factory", "--device", fleet / "c-1",
          "--serial", "c-9", "--passphrase-file", fleet / "passphrase"], 6, "already has burnt"),
        (["factory", "provision", "--factory", fleet / "factory", "--device", tmp_path / "n",
          "--serial", "c-1", "--passphrase-file", fleet / "passphrase"], 6,
         "already provisioned"),
        (["factory", "provision", "--factory", fleet / "factory", "--device", tmp_path / "n",
          "--serial", "c-3", "--server", "https://fleet.example"], 2, "go together"),
        (["factory", "provision", "--factory", fleet / "factory", "--device", tmp_path / "n",
          "--serial", "c-3"], 3, "passphrase is needed"),
        (["factory", "provision", "--factory", tmp_path, "--device", tmp_path / "n",
          "--serial", "c-3"], 3, "not a factory directory"),
        (["factory", "provision", "--factory", fleet / "factory", "--device", tmp_path / "n",
          "--serial", "bad serial!"], 3, "serial"),
        (["device", "boot", "--device", tmp_path / "nothing"], 3, "no gateway"),
        (["device", "attest", "--device", fleet / "c-1", "--nonce", "xyz"], 3, "hex"),
    ]
    for args, code, words in cases:
        result = edgeward(*args, ok=False, env={"EDGEWARD_PASSPHRASE": "wrong"}
                          if "--passphrase-file" not in args and code != 3 else None)
        assert result.returncode == code, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "n").exists()


def test_wrong_passphrase_leaks_nothing(fleet: Path, tmp_path: Path) -> None:
    result = edgeward("factory", "provision", "--factory", fleet / "factory", "--device",
                      tmp_path / "n", "--serial", "c-4", ok=False,
                      env={"EDGEWARD_PASSPHRASE": "guess-123"})
    assert result.returncode == 3 and "wrong passphrase" in result.stderr
    assert "guess-123" not in result.stderr and "PRIVATE KEY" not in result.stderr


@pytest.mark.parametrize("command", [
    [], ["factory"], ["factory", "init"], ["factory", "provision"], ["device"],
    ["device", "boot"], ["device", "attest"], ["device", "status"], ["device", "commit"],
    ["attestation", "verify"], ["demo"], ["device", "update"], ["release"],
    ["release", "init"], ["release", "os", "build"], ["release", "os", "publish"],
    ["release", "promote"], ["release", "keys", "rotate"], ["release", "keys", "add-tenant"],
    ["release", "status"],
])
def test_every_command_has_help(command: list[str]) -> None:
    result = edgeward(*command, "--help")
    assert "Usage: edgeward" in result.stdout and len(result.stdout.splitlines()) > 3


@pytest.fixture
def reachable() -> Iterator[Path]:
    """A directory app users can pass through (pytest's temp directories are 0700)."""
    where = scratch_dir("edgeward-demo-test-")
    where.chmod(0o711)
    try:
        yield where
    finally:
        remove_scratch(where)


def _demo_served(where: Path) -> tuple[dict[str, object], str, str]:
    """Run ``demo --json --serve``; fetch the dashboard's sign-in page while it holds."""
    child = subprocess.Popen([sys.executable, "-m", "edgeward", "demo", "--dir", str(where),
                              "--json", "--serve"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stderr is not None
    url, said = "", []
    deadline = time.monotonic() + 300
    try:
        for line in child.stderr:  # the narration; the JSON waits on stdout until the end
            said.append(line)
            if line.startswith("dashboard: "):
                url = line.split()[1]
                break
            assert time.monotonic() < deadline, "".join(said)
        assert url.startswith("https://127.0.0.1:"), "".join(said)
        context = ssl.create_default_context(cafile=str(where / "server/tls/server-ca.pem"))
        page = httpx.get(url + "login", verify=context)
        child.send_signal(signal.SIGTERM)  # --serve holds the server up until this
        out, rest = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, "".join(said) + rest
    assert page.status_code == 200 and "Sign in" in page.text
    return json.loads(out), "".join(said) + rest, url


def test_demo_tells_the_story_and_serves_until_sigterm(reachable: Path) -> None:
    """One run of the demo (about a minute): the story, then ``--serve`` holding the dashboard."""
    require_tool("mksquashfs")
    summary, human, url = _demo_served(reachable / "demo")
    assert summary["server"] == url.rstrip("/")
    assert summary["ok"] is True
    by_serial = {g["serial"]: g for g in summary["gateways"]}
    assert len(by_serial) == 5
    assert all(g["first_boot"] == "booted" and g["attestation"] == "attested"
               for g in by_serial.values())
    assert by_serial["gw-0005"]["after_tamper"] == "refused"
    assert by_serial["gw-0005"]["refused_stage"] == "bl2"
    assert by_serial["gw-0005"]["attestation_after"].startswith("cannot attest")
    assert by_serial["gw-0001"]["after_tamper"] == "booted"
    assert by_serial["gw-0001"]["attestation_after"] == "attested"
    assert summary["server"].startswith("https://127.0.0.1:")
    assert {g["serial"] for g in summary["fleet"]} == set(by_serial)
    updates = summary["updates"]
    healthy = {"gw-0001", "gw-0002", "gw-0003", "gw-0004"}
    assert {s: o.split(":")[0] for s, o in updates["patch"]["outcomes"].items()} == {
        s: "committed" for s in healthy}  # the security patch rolled out on its own
    assert updates["patch"]["rollout"]["state"] == "finished"
    assert updates["bad"]["outcomes"] == {"gw-0001": updates["bad"]["outcomes"]["gw-0001"]}
    assert updates["bad"]["outcomes"]["gw-0001"].startswith("rolled-back: slot a was not "
                                                            "committed after 3 boot(s)")
    assert updates["bad"]["rollout"]["state"] == "halted"  # the lobby never saw it
    assert all("downgrade refused" in o for o in updates["downgrade"]["outcomes"].values())
    assert updates["versions"] == {s: "1.0.1" for s in healthy}
    apps = summary["apps"]  # two publishers' apps on gw-0001, hvac misbehaving
    assert {n: a["state"] for n, a in apps["apps"].items()} == {"minibar": "running",
                                                                "hvac": "running"}
    assert apps["apps"]["hvac"]["withheld"] == ["network-manager"]
    whats = {e["what"] for e in apps["events"]["hvac"]}
    assert "read /etc/shadow denied (permissions)" in whats
    assert "system call mount denied (seccomp)" in whats
    assert any("NetworkManager" in w and "dbus-proxy" in w for w in whats)
    assert any(w.startswith("connect 198.51.100.7:443 denied (egress)") for w in whats)
    assert any("minibar/secrets/billing-key" in w for w in whats)  # the nosy neighbour
    assert apps["events"]["minibar"] == [] and apps["reports"]["minibar"] > 3
    assert {"network", "network-manager"} <= set(apps["profile"]["interfaces"])
    kept = summary["secrets"]  # the delivered secret used, the stolen flash unreadable
    assert kept["signed_in"] > 0 and kept["secret_version"] == 1
    assert kept["flash_bytes"] > 1 << 20 and len(kept["markers"]) == 4 and not kept["found"]
    assert kept["rebooted_unlocked"] and kept["recovered"] == "gw-0005"
    assert kept["recovery_audited"]
    watched = summary["monitoring"]  # a miner in weather: alerted, shown, stopped
    assert watched["first_alert_after"] <= watched["interval"] + 1  # within one interval
    assert watched["first_alert"]["kind"] in ("egress.blocked", "anomaly.cpu_percent")
    assert watched["alert"]["kind"] == "anomaly.cpu_percent"
    assert watched["alert"]["severity"] == "high" and watched["alert"]["app"] == "weather"
    assert any("xmrig" in line for line in watched["logs"])
    assert any("kworkerd" in w and "execute" in w for w in watched["denials"])
    assert watched["stopped"] == "done"
    assert not mounts.mounts_under(reachable / "demo")  # every gateway off at the end
    # the summary for people, beside the JSON (one run, not two), after the server held
    assert "summary" in human and "refused" in human
    assert "signed updates" in human and "rolled-back" in human
    assert "apps on gw-0001" in human and "complain mode" in human
    assert "plaintexts in the stolen flash" in human
    assert "a miner in weather" in human


def test_the_demo_refuses_a_directory_app_users_cannot_reach(tmp_path: Path) -> None:
    refused = edgeward("demo", "--dir", tmp_path / "demo", ok=False)
    assert refused.returncode == 6 and "closed to other users" in refused.stderr


def test_a_device_certificate_is_no_trust_anchor(fleet: Path, tmp_path: Path) -> None:
    edgeward("device", "boot", "--device", fleet / "c-1")
    edgeward("device", "attest", "--device", fleet / "c-1", "--nonce", HEX_NONCE,
             "--out", tmp_path / "q.json")
    cert = fleet / "c-1/data/system/identity/device.pem"
    result = edgeward("attestation", "verify", "--quote", tmp_path / "q.json", "--nonce",
                      HEX_NONCE, "--cert", cert, "--ca", cert, "--known-good",
                      fleet / "factory/release/known-good.json", ok=False)
    assert result.returncode == 4 and "not a CA certificate" in result.stderr


def test_commit_from_the_cli_needs_a_trial_boot(fleet: Path) -> None:
    edgeward("device", "boot", "--device", fleet / "c-1")
    result = edgeward("device", "commit", "--device", fleet / "c-1", ok=False)
    assert result.returncode == 6 and "already committed" in result.stderr
