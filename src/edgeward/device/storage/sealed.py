"""The /data key sealed in the board's TPM, where it has one (trust/bootpolicy.py).

At provisioning the key is sealed under PolicyAuthorize(kernel key) and the
TPM's anti-rollback counter is brought to the fused OS security version. At
boot the stages extend the PCRs; the OS stage reads the approved policy of the
slot it booted (written with the slot, from the release's signed TUF target),
has the TPM check the vendor's signature and the PCRs and the counter, and
unseals; then it closes the door (extends the OS PCR once more), so nothing
later in this boot satisfies the policy again. The blob on the flash opens in
no other TPM.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from edgeward.board.base import Board, policy_partition
from edgeward.device.storage.tpm import Tpm
from edgeward.errors import StateError
from edgeward.files import read_file, write_secret
from edgeward.trust import tpmpolicy
from edgeward.trust.bootpolicy import OS_PCR, POLICY_REF
from edgeward.trust.keys import PublicKey, keyid
from edgeward.trust.manifest import KernelBundle

BLOB = "data-volume.tpm"


def holds_volume_key(board: Board) -> bool:
    return (board.sealed_dir / BLOB).is_file()


def measure(board: Board, pcr: int, digest: bytes) -> None:
    tcti = board.tpm()
    if tcti is not None:
        with Tpm(tcti) as chip:
            chip.extend(pcr, digest)


def close_door(board: Board) -> None:
    tcti = board.tpm()
    if tcti is not None:
        with Tpm(tcti) as chip:
            chip.close_door(OS_PCR)


def _tcti(board: Board) -> str:
    tcti = board.tpm()
    if tcti is None:
        raise StateError("this board has no TPM")
    return tcti


def seal_volume_key(board: Board, volume_key: bytes, kernel_key: PublicKey,
                    security_version: int) -> None:
    """At provisioning: the counter at the fused version, the key sealed to the vendor."""
    if not isinstance(kernel_key, ec.EllipticCurvePublicKey):
        raise StateError("the kernel key is not a P-384 key: it cannot approve TPM policies")
    with Tpm(_tcti(board)) as chip:
        chip.define_counter()
        chip.advance_counter_to(max(security_version, 1))
        write_secret(board.sealed_dir / BLOB, chip.seal(volume_key, kernel_key, POLICY_REF))


def unseal_volume_key(board: Board, slot: str, bundle: KernelBundle,
                      kernel_keys: tuple[PublicKey, ...]) -> bytes:
    """In the OS stage: the key, if this boot is one the vendor approved (else an error)."""
    policy = board.read(policy_partition(slot))
    if not policy:
        raise StateError(f"slot {slot} carries no approved TPM policy")
    approved = tpmpolicy.ApprovedPolicy.decode(policy)
    authority = next((k for k in kernel_keys if keyid(k) == bundle.signer), None)
    if not isinstance(authority, ec.EllipticCurvePublicKey):
        raise StateError("the kernel's signer cannot approve TPM policies")
    with Tpm(_tcti(board)) as chip:
        return chip.unseal(read_file(board.sealed_dir / BLOB, "sealed volume key", 1 << 16),
                           approved, authority, POLICY_REF)


def advance_counter(board: Board, version: int) -> None:
    """With the fused OS security version (at a commit): older approvals stop opening."""
    if holds_volume_key(board):
        with Tpm(_tcti(board)) as chip:
            chip.advance_counter_to(version)
