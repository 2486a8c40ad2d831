"""The TPM policy a signed OS release satisfies (pure): what its boot measures into the
OS PCR, and the approved policy its vendor signs for it.

On a gateway with a TPM the stages extend the TPM's PCRs as they extend the
board's register: the ROM's measurement of BL2 into PCR 0 (firmware, which the
ROM enforces against the fused key hash), and BL2's of the kernel bundle and
the kernel's of the rootfs into PCR 8 (the OS). PCR 8's value after a good boot
follows from the signed kernel bundle alone, so the OS vendor computes it when
building a release and signs, with the kernel key, an approved policy:
PolicyPCR(PCR 8 = that value) and PolicyNV(anti-rollback counter <= the release's
security version). The /data key is sealed under PolicyAuthorize(kernel key):
every release the vendor approves opens it without a reseal, a tampered or
foreign chain never does, and once the counter has moved past a release's
security version its old approval is refused.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from edgeward.errors import KeyFileError
from edgeward.trust import tpmpolicy
from edgeward.trust.digest import sha384
from edgeward.trust.keys import PrivateKey
from edgeward.trust.manifest import KernelBundle
from edgeward.trust.measurement import COMPONENTS, Event, event_digest

FIRMWARE_PCR = 0
OS_PCR = tpmpolicy.BOOT_PCR
POLICY_REF = b"edgeward data-volume v1"
PCR_SIZE = 48


def os_events(bundle: KernelBundle) -> tuple[Event, Event]:
    """The two events a good boot of ``bundle`` measures (as stages.bl2 and .kernel do)."""
    return (Event("bl2", COMPONENTS["bl2"], bundle.digest, bundle.version,
                  bundle.security_version, bundle.signer),
            Event("kernel", COMPONENTS["kernel"], bundle.rootfs.root_hash.hex(),
                  bundle.version, bundle.security_version, bundle.signer))


def expected_os_pcr(bundle: KernelBundle) -> bytes:
    value = bytes(PCR_SIZE)
    for event in os_events(bundle):
        value = sha384(value + event_digest(event))
    return value


def approve_release(kernel_key: PrivateKey, bundle: KernelBundle
                    ) -> tpmpolicy.ApprovedPolicy:
    """The vendor's approval of ``bundle`` (signed with the key that signed the bundle)."""
    if not isinstance(kernel_key, ec.EllipticCurvePrivateKey):
        raise KeyFileError("TPM policies are approved with a P-384 kernel key")
    return tpmpolicy.approve(kernel_key, (OS_PCR,), (expected_os_pcr(bundle),),
                             bundle.security_version, POLICY_REF)
