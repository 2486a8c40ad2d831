"""TPM 2.0 policies for the sealed /data key, computed in software (pure).

The sealed object's ``authPolicy`` is ``PolicyAuthorize(authority, policyRef)``:
whoever holds the authority key (the OS vendor) decides, by signing, which boot
chains may open it. What the vendor signs is an *approved policy*::

    PolicyPCR(boot-chain PCRs of the SHA-384 bank, digest of their expected values)
    PolicyNV(security-version counter, operandB = version (8 bytes BE), offset 0,
             UNSIGNED_LE)          i.e. "the device's counter <= this version"

so a signed update only needs a new signature (no reseal), a tampered chain
never matches the PCRs, and once the counter moved past a release's security
version, that release's old approved policy (a downgrade) is dead.

Policy sessions hash with SHA-384 (the project's one digest; swtpm and
tpm2-pytss both support it), so the sealed object's nameAlg is SHA-384 too.
The authority signs ``aHash = SHA-384(approvedPolicy || policyRef)`` with ECDSA
P-384, which is what TPM2_VerifySignature checks and TPM2_PolicyAuthorize
re-derives (with the nameAlg of the authority's loaded public key: SHA-384).

Everything here is bytes in, bytes out; :mod:`edgeward.device.storage.tpm`
does the talking to a TPM, and its tests check these digests against one.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)

from edgeward.errors import InputError, KeyFileError, SignatureError
from edgeward.trust.canonical import Fields, canonical, load_object
from edgeward.trust.digest import DIGEST_SIZE, sha384

# TPM 2.0 constants (TPM 2.0 Library Part 2)
ALG_SHA384 = 0x000C
ALG_NULL = 0x0010
ALG_ECDSA = 0x0018
ALG_ECC = 0x0023
ECC_NIST_P384 = 0x0004
CC_POLICY_NV = 0x00000149
CC_POLICY_AUTHORIZE = 0x0000016A
CC_POLICY_PCR = 0x0000017F
EO_UNSIGNED_LE = 0x0009

# TPMA_OBJECT of the authority's public key as loaded with TPM2_LoadExternal
OBJECT_USER_WITH_AUTH = 0x00000040
OBJECT_SIGN_ENCRYPT = 0x00040000
AUTHORITY_ATTRIBUTES = OBJECT_USER_WITH_AUTH | OBJECT_SIGN_ENCRYPT

# TPMA_NV of the security-version counter: a counter (written only by
# TPM2_NV_Increment, never down), incremented with owner auth, readable by anyone
# (its own empty auth: PolicyNV needs no owner secret), no dictionary-attack
# lockout. WRITTEN is set by the first increment and is part of the name policies use.
NV_OWNERWRITE = 0x00000002
NV_COUNTER = 0x00000010  # TPM_NT_COUNTER << 4
NV_OWNERREAD = 0x00020000
NV_AUTHREAD = 0x00040000
NV_NO_DA = 0x02000000
NV_WRITTEN = 0x20000000
COUNTER_ATTRIBUTES = NV_COUNTER | NV_OWNERWRITE | NV_OWNERREAD | NV_AUTHREAD | NV_NO_DA
COUNTER_SIZE = 8

DEFAULT_COUNTER_INDEX = 0x0100EE01  # owner range of the NV handle registry
NV_INDEX_FIRST, NV_INDEX_LAST = 0x01000000, 0x01FFFFFF
# PCRs 16 (debug) and 23 (application) can be reset at will and 17-22 by a
# dynamic launch: a policy over them would prove nothing. Only 0-15.
BOOTABLE_PCRS = range(16)
BOOT_PCR = 8  # where the OS stage measures the chain it verified
PCR_SELECT_BYTES = 3  # 24 PCRs in a bank
MAX_POLICY_REF = 32
SIGNATURE_SIZE = 96  # P-384 r || s
MAX_VERSION = 2**64 - 1
FORMAT = "edgeward-tpm-approved-policy-1"
_ECDSA_PREHASHED = ec.ECDSA(Prehashed(hashes.SHA384()))  # signs aHash itself, as the TPM


def _b2(data: bytes) -> bytes:
    """A TPM2B: 16-bit big-endian size, then the bytes."""
    return struct.pack(">H", len(data)) + data


def _check_pcrs(pcrs: Sequence[int]) -> tuple[int, ...]:
    if not pcrs:
        raise InputError("a PCR policy needs at least one PCR")
    if any(p not in BOOTABLE_PCRS for p in pcrs):
        raise InputError("PCRs must be between 0 and 15 (the others can be reset)")
    if list(pcrs) != sorted(set(pcrs)):
        raise InputError("PCRs must be listed once each, in increasing order")
    return tuple(pcrs)


def pcr_selection(pcrs: Sequence[int]) -> bytes:
    """TPML_PCR_SELECTION of ``pcrs`` in the SHA-384 bank, marshaled."""
    bitmap = bytearray(PCR_SELECT_BYTES)
    for p in _check_pcrs(pcrs):
        bitmap[p // 8] |= 1 << (p % 8)
    return struct.pack(">IHB", 1, ALG_SHA384, PCR_SELECT_BYTES) + bytes(bitmap)


def _check_values(pcrs: Sequence[int], values: Sequence[bytes]) -> None:
    if len(values) != len(pcrs) or any(len(v) != DIGEST_SIZE for v in values):
        raise InputError(f"expected one {DIGEST_SIZE}-byte value per PCR")


def pcr_digest(values: Sequence[bytes]) -> bytes:
    """What PolicyPCR compares: SHA-384 over the PCR values, in PCR order."""
    return sha384(b"".join(values))


def policy_pcr(digest: bytes, pcrs: Sequence[int], values: Sequence[bytes]) -> bytes:
    """``digest`` extended by TPM2_PolicyPCR(pcrs, pcr_digest(values))."""
    _check_values(pcrs, values)
    return sha384(digest + struct.pack(">I", CC_POLICY_PCR) + pcr_selection(pcrs)
                  + pcr_digest(values))


def version_operand(security_version: int) -> bytes:
    if not 0 <= security_version <= MAX_VERSION:
        raise InputError("a security version must be between 0 and 2**64-1")
    return security_version.to_bytes(COUNTER_SIZE, "big")


def policy_nv(digest: bytes, nv_name: bytes, operand_b: bytes, offset: int = 0,
              operation: int = EO_UNSIGNED_LE) -> bytes:
    """``digest`` extended by TPM2_PolicyNV(index named ``nv_name``, operandB, offset, op)."""
    args = sha384(operand_b + struct.pack(">HH", offset, operation))
    return sha384(digest + struct.pack(">I", CC_POLICY_NV) + args + nv_name)


def policy_authorize(key_name: bytes, policy_ref: bytes) -> bytes:
    """The digest after TPM2_PolicyAuthorize(key ``key_name``, ``policy_ref``), from any."""
    digest = sha384(bytes(DIGEST_SIZE) + struct.pack(">I", CC_POLICY_AUTHORIZE) + key_name)
    return sha384(digest + _check_ref(policy_ref))


def _check_ref(policy_ref: bytes) -> bytes:
    if len(policy_ref) > MAX_POLICY_REF:
        raise InputError(f"a policy reference is at most {MAX_POLICY_REF} bytes")
    return policy_ref


def _check_index(index: int) -> int:
    if not NV_INDEX_FIRST <= index <= NV_INDEX_LAST:
        raise InputError(f"{index:#x} is not an NV index handle")
    return index


def counter_public(index: int, written: bool = True) -> bytes:
    """TPMS_NV_PUBLIC of the security-version counter at ``index``, marshaled."""
    attributes = COUNTER_ATTRIBUTES | (NV_WRITTEN if written else 0)
    return struct.pack(">IHI", _check_index(index), ALG_SHA384, attributes) + _b2(b"") \
        + struct.pack(">H", COUNTER_SIZE)


def counter_name(index: int) -> bytes:
    """The name of the counter once incremented (the one PolicyNV binds to)."""
    return struct.pack(">H", ALG_SHA384) + sha384(counter_public(index))


def _p384(key: ec.EllipticCurvePublicKey) -> ec.EllipticCurvePublicKey:
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve,
                                                                         ec.SECP384R1):
        raise KeyFileError("a policy authority must be an ECDSA P-384 key")
    return key


def authority_public(key: ec.EllipticCurvePublicKey) -> bytes:
    """TPMT_PUBLIC of the authority's key as loaded with TPM2_LoadExternal, marshaled."""
    numbers = _p384(key).public_numbers()
    return (struct.pack(">HHI", ALG_ECC, ALG_SHA384, AUTHORITY_ATTRIBUTES) + _b2(b"")
            # symmetric NULL, scheme ECDSA(SHA-384), curve P-384, kdf NULL
            + struct.pack(">HHHHH", ALG_NULL, ALG_ECDSA, ALG_SHA384, ECC_NIST_P384, ALG_NULL)
            + _b2(numbers.x.to_bytes(48, "big")) + _b2(numbers.y.to_bytes(48, "big")))


def authority_name(key: ec.EllipticCurvePublicKey) -> bytes:
    return struct.pack(">H", ALG_SHA384) + sha384(authority_public(key))


def sealed_auth_policy(authority: ec.EllipticCurvePublicKey, policy_ref: bytes) -> bytes:
    """The sealed object's authPolicy: only what ``authority`` approves opens it."""
    return policy_authorize(authority_name(authority), policy_ref)


def approved_digest(pcrs: Sequence[int], values: Sequence[bytes], security_version: int,
                    counter_index: int = DEFAULT_COUNTER_INDEX) -> bytes:
    """PolicyPCR(pcrs = values) then PolicyNV(counter <= security_version)."""
    digest = policy_pcr(bytes(DIGEST_SIZE), pcrs, values)
    return policy_nv(digest, counter_name(counter_index), version_operand(security_version))


def authorization_hash(approved: bytes, policy_ref: bytes) -> bytes:
    """aHash: what the authority signs and TPM2_VerifySignature checks."""
    return sha384(approved + _check_ref(policy_ref))


@dataclass(frozen=True)
class ApprovedPolicy:
    """A boot chain the authority approved: PCR values and the security version."""

    pcrs: tuple[int, ...]
    values: tuple[bytes, ...]
    security_version: int
    counter_index: int
    signature: bytes  # P-384 r || s over authorization_hash(digest(), policy_ref)

    def digest(self) -> bytes:
        return approved_digest(self.pcrs, self.values, self.security_version,
                               self.counter_index)

    def signature_rs(self) -> tuple[int, int]:
        half = SIGNATURE_SIZE // 2
        return (int.from_bytes(self.signature[:half], "big"),
                int.from_bytes(self.signature[half:], "big"))

    def encode(self) -> bytes:
        return canonical({
            "format": FORMAT, "pcrs": list(self.pcrs),
            "values": [v.hex() for v in self.values],
            "security_version": self.security_version, "counter_index": self.counter_index,
            "signature": self.signature.hex(),
        })

    @classmethod
    def decode(cls, data: bytes) -> ApprovedPolicy:
        """Parse an encoded approved policy; InputError for anything malformed."""
        what = "approved TPM policy"
        f = Fields(load_object(data, what, limit=1 << 14), what, InputError).expect(
            {"format", "pcrs", "values", "security_version", "counter_index", "signature"})
        if f.str_("format", max_len=64) != FORMAT:
            f.fail(f"format must be {FORMAT!r}")
        raw_pcrs = f.list_("pcrs", max_items=len(BOOTABLE_PCRS))
        if any(not isinstance(p, int) or isinstance(p, bool) for p in raw_pcrs):
            f.fail("field 'pcrs' must list integers")
        raw_values = f.list_("values", max_items=len(BOOTABLE_PCRS))
        values = []
        for i, v in enumerate(raw_values):
            values.append(Fields({"v": v}, f"{what}.values[{i}]", InputError)
                          .hex_("v", DIGEST_SIZE))
        pcrs = _check_pcrs(raw_pcrs)
        _check_values(pcrs, values)
        return cls(pcrs, tuple(values), f.int_("security_version", 0, MAX_VERSION),
                   _check_index(f.int_("counter_index", 0, 2**32 - 1)),
                   f.hex_("signature", SIGNATURE_SIZE))


def approve(authority: ec.EllipticCurvePrivateKey, pcrs: Sequence[int],
            values: Sequence[bytes], security_version: int, policy_ref: bytes,
            counter_index: int = DEFAULT_COUNTER_INDEX) -> ApprovedPolicy:
    """Sign an approved policy for a boot chain (the authority's side, offline)."""
    _p384(authority.public_key())
    pcrs = _check_pcrs(pcrs)
    _check_values(pcrs, values)
    a_hash = authorization_hash(
        approved_digest(pcrs, values, security_version, counter_index), policy_ref)
    r, s = decode_dss_signature(authority.sign(a_hash, _ECDSA_PREHASHED))
    return ApprovedPolicy(pcrs, tuple(values), security_version, counter_index,
                          r.to_bytes(48, "big") + s.to_bytes(48, "big"))


def verify(approved: ApprovedPolicy, authority: ec.EllipticCurvePublicKey,
           policy_ref: bytes) -> None:
    """Software check of an approved policy's signature (the TPM checks it again)."""
    r, s = approved.signature_rs()
    try:
        _p384(authority).verify(encode_dss_signature(r, s),
                                authorization_hash(approved.digest(), policy_ref),
                                _ECDSA_PREHASHED)
    except InvalidSignature as e:
        raise SignatureError("the approved TPM policy is not signed by the policy "
                             "authority") from e
