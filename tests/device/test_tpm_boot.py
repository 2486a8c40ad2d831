"""Gateways with a TPM: the /data key sealed in a real swtpm at provisioning, opened by
the OS stage only for a boot the OS vendor approved, and never again in that boot.

Provisioned with ``--tpm`` through the factory's own code; every boot restarts the
board's swtpm on its state directory (a reboot: PCRs reset, NV and seeds kept).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from edgeward.board.base import policy_partition
from edgeward.board.virtual import VirtualBoard
from edgeward.device import keyring
from edgeward.device.boot.chain import boot
from edgeward.device.status import status
from edgeward.device.storage import sealed, volume
from edgeward.device.storage.tpm import Tpm
from edgeward.errors import Error
from edgeward.factory.provision import provision
from edgeward.factory.station import Factory
from edgeward.trust import tpmpolicy
from edgeward.trust.bootpolicy import OS_PCR, POLICY_REF, expected_os_pcr
from edgeward.trust.keys import PublicKey
from edgeward.trust.manifest import KernelBundle, peek_bl2, verify_kernel_bundle
from tests.conftest import NOW, require_tool


@pytest.fixture
def tpm_gateway(factory: Factory, tmp_path: Path) -> Iterator[VirtualBoard]:
    require_tool("swtpm")
    require_tool("swtpm_setup")
    provision(factory, tmp_path / "gw-tpm", "gw-tpm", None, NOW, tpm=True)
    board = VirtualBoard.open(tmp_path / "gw-tpm")
    yield board
    board.power_off()


def _bundle(board: VirtualBoard, slot: str = "a"
            ) -> tuple[KernelBundle, tuple[PublicKey, ...]]:
    bl2 = peek_bl2(board.read("bl2") or b"")
    bundle = verify_kernel_bundle(board.read(f"kernel_{slot}") or b"", bl2.kernel_keys, 0)
    return bundle, bl2.kernel_keys


def test_the_key_is_in_the_tpm_and_a_verified_boot_opens_it(tpm_gateway: VirtualBoard
                                                            ) -> None:
    sealed_files = sorted(p.name for p in tpm_gateway.sealed_dir.iterdir())
    assert "data-volume.tpm" in sealed_files
    assert not [n for n in sealed_files if n.startswith("data-volume.v")]  # not HUK-wrapped
    for _ in range(2):  # and again after a reboot (swtpm restarted on its state)
        report = boot(tpm_gateway)
        assert report.verdict == "booted", report.reason
        assert volume.unlocked(tpm_gateway)
        (tpm_gateway.data_dir / "note").write_text("kept")
    assert volume.describe(tpm_gateway)["encryption"].startswith("fscrypt v2")
    assert status(tpm_gateway)["data_area"]["key_sealed"] == "in the TPM"


def test_nothing_later_in_the_boot_unseals_again(tpm_gateway: VirtualBoard) -> None:
    bundle, kernel_keys = _bundle(tpm_gateway)
    with pytest.raises(Error):  # the OS stage closed the door (extended the OS PCR)
        sealed.unseal_volume_key(tpm_gateway, "a", bundle, kernel_keys)
    tcti = tpm_gateway.tpm()
    assert tcti is not None
    with Tpm(tcti) as chip:
        assert chip.read_pcr(OS_PCR) != expected_os_pcr(bundle)


def test_an_approval_by_another_key_never_opens_it(tpm_gateway: VirtualBoard) -> None:
    bundle, _ = _bundle(tpm_gateway)
    forged = tpmpolicy.approve(ec.generate_private_key(ec.SECP384R1()), (OS_PCR,),
                               (expected_os_pcr(bundle),), bundle.security_version,
                               POLICY_REF)
    tpm_gateway.write(policy_partition("a"), forged.encode())
    report = boot(tpm_gateway)
    assert report.refused_stage == "os" and not volume.unlocked(tpm_gateway)
    assert keyring.recall(tpm_gateway, keyring.DATA_VOLUME) is None


def test_a_chain_other_than_the_approved_one_never_opens_it(tpm_gateway: VirtualBoard,
                                                            factory: Factory) -> None:
    bundle, _ = _bundle(tpm_gateway)
    kernel_key = factory.key("kernel", None)
    assert isinstance(kernel_key, ec.EllipticCurvePrivateKey)
    other = tpmpolicy.approve(kernel_key, (OS_PCR,), (bytes(48),),  # a chain measured
                              bundle.security_version, POLICY_REF)  # otherwise
    tpm_gateway.write(policy_partition("a"), other.encode())
    assert boot(tpm_gateway).refused_stage == "os"
    assert not volume.unlocked(tpm_gateway)


def test_an_old_approval_is_refused_once_the_counter_moved_and_a_new_one_needs_no_reseal(
        tpm_gateway: VirtualBoard, factory: Factory) -> None:
    bundle, _ = _bundle(tpm_gateway)
    blob = (tpm_gateway.sealed_dir / sealed.BLOB).read_bytes()
    sealed.advance_counter(tpm_gateway, bundle.security_version + 1)  # a later release
    report = boot(tpm_gateway)  # committed; the old release's approval is replayed
    assert report.refused_stage == "os" and not volume.unlocked(tpm_gateway)
    kernel_key = factory.key("kernel", None)
    assert isinstance(kernel_key, ec.EllipticCurvePrivateKey)
    newer = tpmpolicy.approve(kernel_key, (OS_PCR,), (expected_os_pcr(bundle),),
                              bundle.security_version + 1, POLICY_REF)
    tpm_gateway.write(policy_partition("a"), newer.encode())
    assert boot(tpm_gateway).verdict == "booted"
    assert (tpm_gateway.sealed_dir / sealed.BLOB).read_bytes() == blob  # never resealed


def test_the_flash_in_another_boards_tpm_never_opens(factory: Factory, tmp_path: Path
                                                      ) -> None:
    require_tool("swtpm")
    provision(factory, tmp_path / "gw-1", "gw-1", None, NOW, tpm=True)
    provision(factory, tmp_path / "gw-2", "gw-2", None, NOW, tpm=True)
    one, two = VirtualBoard.open(tmp_path / "gw-1"), VirtualBoard.open(tmp_path / "gw-2")
    try:
        one.power_off()
        two.power_off()
        # gw-1's data area and its TPM blob on gw-2, whose own HUK-sealed identity opens:
        # only gw-1's chip could load the blob
        for name in ("data.img", f"sealed/{sealed.BLOB}"):
            shutil.copy(one.root / "flash" / name, two.root / "flash" / name)
        report = boot(two)
        assert report.refused_stage == "os" and "do not open" in report.reason
        assert not volume.unlocked(two)
        assert boot(one).verdict == "booted"
    finally:
        one.power_off()
        two.power_off()
