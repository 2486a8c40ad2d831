"""Boot-bound keys, the measurement register, and a boot that meets unreadable flash.

The attacker here has the flash (a dump, or the chip on a programmer) or
replaces files under a running board; each case must end with no usable key
and no good quote.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgeward.board.virtual import VirtualBoard
from edgeward.device import attest, identity, keyring
from edgeward.device.boot.chain import BOOT_STATE, boot
from edgeward.device.boot.commit import commit_booted_slot
from edgeward.device.boot.slots import stage_try
from edgeward.errors import AttestationError, InputError, StateError
from edgeward.factory.station import Factory
from edgeward.release import rootfs
from edgeward.release.osimage import make_bl2, make_kernel_bundle
from edgeward.trust import keys
from tests.conftest import slot_a_rootfs


def test_a_good_boot_log_copied_onto_a_tampered_device_gives_no_quote(
        gateway: VirtualBoard, tmp_path: Path) -> None:
    good_state, good_register = gateway.ram_read(BOOT_STATE), gateway.read_register()
    assert good_state is not None
    clone = tmp_path / "clone"
    shutil.copytree(gateway.root, clone)
    board = VirtualBoard.open(clone)
    kernel = board.partition_path("kernel_a")
    kernel.write_bytes(kernel.read_bytes()[:-5])
    assert boot(board).refused_stage == "bl2"
    board.ram_write(BOOT_STATE, good_state)  # forge this power cycle's state...
    board.ram_write("register", good_register)
    with pytest.raises(AttestationError, match="identity key is sealed"):
        attest.quote(board, bytes(32))  # ...but only a verified boot opens the key


def test_the_identity_key_is_gone_after_power_off(gateway: VirtualBoard) -> None:
    assert keyring.recall(gateway, keyring.IDENTITY) is not None
    gateway.power_on()  # reset without booting
    with pytest.raises(AttestationError):
        identity.identity_key(gateway)


def test_an_event_log_that_does_not_match_the_register_is_not_quoted(
        gateway: VirtualBoard) -> None:
    gateway.extend_register(bytes(48))  # something measured outside the log
    with pytest.raises(AttestationError, match="does not match the measurement register"):
        attest.quote(gateway, bytes(32))


def test_corrupt_boot_state_in_ram_is_a_clear_error(gateway: VirtualBoard) -> None:
    for junk in (b"[]", b"{", b'{"verdict": 1}'):
        gateway.ram_write(BOOT_STATE, junk)
        with pytest.raises(InputError, match="boot state in RAM"):
            attest.quote(gateway, bytes(32))


def test_a_wiped_data_key_refuses_the_boot(gateway: VirtualBoard) -> None:
    (gateway.sealed_dir / f"{keyring.DATA_VOLUME}.v1.wrapped").unlink()
    report = boot(gateway)
    assert report.refused_stage == "os" and "missing" in report.reason


def test_sealed_blobs_cannot_be_swapped(gateway: VirtualBoard) -> None:
    sealed = gateway.sealed_dir
    data, ident = sealed / "data-volume.v1.wrapped", sealed / "identity.v1.wrapped"
    a, b = data.read_bytes(), ident.read_bytes()
    data.write_bytes(b)
    ident.write_bytes(a)
    assert boot(gateway).refused_stage == "os"


@pytest.mark.parametrize(("partition", "stage"), [
    ("bl2", "rom"), ("kernel_a", "bl2"), ("rootfs_a", "kernel")])
def test_unreadable_flash_is_a_refusal_and_the_huk_stays_locked(
        gateway: VirtualBoard, partition: str, stage: str) -> None:
    path = gateway.partition_path(partition)
    path.unlink()
    path.mkdir()  # reading it now fails (an OSError), or it reads as nonsense
    report = boot(gateway)
    assert (report.verdict, report.refused_stage) == ("refused", stage)
    assert gateway.huk_locked()
    assert gateway.ram_read(BOOT_STATE) is not None  # the refusal is on record


def test_a_second_kernel_key_in_bl2_boots_without_a_reseal(
        gateway: VirtualBoard, factory: Factory, tmp_path: Path) -> None:
    """Kernel-key rotation: BL2 trusts old and new key; the new key's bundle boots."""
    new_key = keys.generate()
    gateway.write("bl2", make_bl2("1.1.0", 1, "ew-gw1", [factory.key("kernel", None), new_key],
                                  factory.key("boot-root", None)))
    sealed = slot_a_rootfs(gateway)
    gateway.write("kernel_a", make_kernel_bundle("1.1.0", 1, "ew-gw1", sealed, new_key))
    assert boot(gateway).verdict == "booted"


def test_commit_burns_the_security_version_and_refuses_the_committed_slot_as_a_target(
        gateway: VirtualBoard, factory: Factory, tmp_path: Path) -> None:
    kernel_key = factory.key("kernel", None)
    gateway.write("bl2", make_bl2("2.0.0", 2, "ew-gw1", [kernel_key],
                                  factory.key("boot-root", None)))
    sealed = rootfs.build(tmp_path / "r.img", "2.0.0", "ew-gw1", 2)
    gateway.write("rootfs_b", sealed.path)
    gateway.write("kernel_b", make_kernel_bundle("2.0.0", 2, "ew-gw1", sealed, kernel_key))
    env = gateway.read_env()
    assert env is not None
    gateway.write_env(stage_try(env, "b"))
    with pytest.raises(StateError, match="holds the committed release"):
        stage_try(gateway.read_env() or env, "a")  # a is what we would fall back to
    assert boot(gateway).slot == "b"
    done = commit_booted_slot(gateway)
    assert (done.slot, done.security_version, done.burnt) == ("b", 2, True)
    assert gateway.fuses().security_version == 2
    with pytest.raises(StateError, match="already committed"):
        commit_booted_slot(gateway)
