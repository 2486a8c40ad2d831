"""The /data volume key sealed in a TPM, under a policy a signed boot chain satisfies.

This is the I/O half (tpm2-pytss ESAPI); the policy arithmetic and the approved
policies an authority signs are in :mod:`edgeward.trust.tpmpolicy`.

- :meth:`Tpm.seal` creates a sealed data object (keyedhash, no userWithAuth)
  whose authPolicy is ``PolicyAuthorize(authority, policyRef)``, under a storage
  primary derived from the owner hierarchy with a fixed template (the TCG ECC
  P-256 SRK: re-created on demand, nothing persistent). The blob it returns
  (public and private parts) is useless without this very chip.
- :meth:`Tpm.unseal` has the TPM check the approved policy's signature
  (VerifySignature -> ticket), then runs PolicyPCR + PolicyNV + PolicyAuthorize
  in one SHA-384 policy session and unseals.
- :meth:`Tpm.close_door` extends the boot PCR with a fixed value once the key
  is out, so nothing later in this boot can satisfy any approved policy again.

Sessions are salted with the storage primary and encrypt the secret both ways
(into Create, out of Unseal): it never crosses the bus to the chip in the clear.

Every TSS failure becomes a project error (the TSS text is chained, never
quoted: it says which check failed, and messages here say so in words).
The blob does not authenticate the secret's *origin*: whoever can talk to the
chip can seal a key of their own choosing under the same policy, so the volume
must still check that the key it is given is its own (fscrypt key identifier).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from types import TracebackType

from cryptography.hazmat.primitives.asymmetric import ec
from tpm2_pytss import (
    ESAPI,
    ESYS_TR,
    TPM2_ALG,
    TPM2_CAP,
    TPM2_EO,
    TPM2_HANDLE,
    TPM2_RC,
    TPM2_SE,
    TPM2B_NV_PUBLIC,
    TPM2B_PRIVATE,
    TPM2B_PUBLIC,
    TPM2B_SENSITIVE_CREATE,
    TPMA_OBJECT,
    TPMA_SESSION,
    TPML_DIGEST_VALUES,
    TPML_PCR_SELECTION,
    TPMS_NV_PUBLIC,
    TPMS_SENSITIVE_CREATE,
    TPMS_SIGNATURE_ECC,
    TPMT_HA,
    TPMT_PUBLIC,
    TPMT_SIGNATURE,
    TPMT_SYM_DEF,
    TPMU_HA,
    TPMU_SIGNATURE,
    TSS2_Exception,
)

from edgeward.errors import (
    InputError,
    IntegrityError,
    RollbackError,
    SignatureError,
    StateError,
    ToolError,
)
from edgeward.trust import tpmpolicy
from edgeward.trust.digest import DIGEST_SIZE, same, sha384

MAGIC = b"EWTPMSEAL1"
MAX_BLOB = 4096
MAX_SECRET = 128  # TPM2B_SENSITIVE_DATA holds at least this much on any TPM
MAX_INCREMENTS = 256  # NV writes one advance may cost (TPM NV wears; versions step by 1)
DOOR = sha384(b"edgeward: boot done; the sealed /data key stays shut until the next boot")

# The TCG "ECC NIST P256 SRK" template: every TPM 2.0 has it, the same chip always
# derives the same key from it, another chip another one.
SRK_TEMPLATE = ("ecc256:aes128cfb", TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT
                | TPMA_OBJECT.SENSITIVEDATAORIGIN | TPMA_OBJECT.USERWITHAUTH
                | TPMA_OBJECT.NODA | TPMA_OBJECT.RESTRICTED | TPMA_OBJECT.DECRYPT)
# The sealed object: opened only through its policy (no userWithAuth; adminWithPolicy
# so changing its auth needs the policy too), never duplicated, no DA lockout.
SEALED_ATTRIBUTES = (TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT | TPMA_OBJECT.NODA
                     | TPMA_OBJECT.ADMINWITHPOLICY)
_SESSION_SYMMETRIC = "aes128cfb"


def _rc(e: TSS2_Exception) -> int:
    return int(e.error)


@contextmanager
def _tss(what: str) -> Iterator[None]:
    """Any TSS failure not handled more precisely: the TPM refused or is unreachable."""
    try:
        yield
    except TSS2_Exception as e:
        raise ToolError(f"the TPM refused to {what}") from e


def _blob_parts(blob: bytes) -> tuple[TPM2B_PUBLIC, TPM2B_PRIVATE]:
    if len(blob) > MAX_BLOB or not blob.startswith(MAGIC):
        raise InputError("sealed key: not an edgeward TPM-sealed blob")
    body = blob[len(MAGIC):]
    try:
        public, used = TPM2B_PUBLIC.unmarshal(body)
        private, used2 = TPM2B_PRIVATE.unmarshal(body[used:])
    except (TSS2_Exception, ValueError, TypeError) as e:
        raise InputError("sealed key: truncated or malformed") from e
    if used + used2 != len(body):
        raise InputError("sealed key: trailing bytes after the private part")
    return public, private


class Tpm:
    """One connection to a TPM 2.0 (``tcti`` as tpm2-tools writes it)."""

    def __init__(self, tcti: str) -> None:
        try:
            self._esapi = ESAPI(tcti)
        except TSS2_Exception as e:
            raise ToolError(f"cannot reach the TPM at {tcti}") from e

    def close(self) -> None:
        self._esapi.close()

    def __enter__(self) -> Tpm:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- PCRs (SHA-384 bank) ---------------------------------------------------
    def extend(self, pcr: int, digest: bytes) -> None:
        if pcr not in range(24) or len(digest) != DIGEST_SIZE:
            raise InputError(f"extend needs a PCR 0-23 and a {DIGEST_SIZE}-byte digest")
        value = TPMT_HA(hashAlg=TPM2_ALG.SHA384, digest=TPMU_HA(sha384=digest))
        with _tss(f"extend PCR {pcr}"):
            self._esapi.pcr_extend(pcr_handle=ESYS_TR(pcr),
                                   digests=TPML_DIGEST_VALUES([value]))

    def read_pcr(self, pcr: int) -> bytes:
        if pcr not in range(24):
            raise InputError("PCRs are numbered 0-23")
        with _tss(f"read PCR {pcr}"):
            _, _, values = self._esapi.pcr_read(
                pcr_selection_in=TPML_PCR_SELECTION.parse(f"sha384:{pcr}"))
        if len(values) != 1:
            raise ToolError("this TPM has no SHA-384 PCR bank allocated")
        return bytes(values[0])

    def close_door(self, pcr: int = tpmpolicy.BOOT_PCR) -> None:
        """After the key is out: no approved policy matches this PCR until reboot."""
        self.extend(pcr, DOOR)

    # --- the security-version counter --------------------------------------------
    def _counter(self, stack: ExitStack, index: int) -> ESYS_TR:
        try:
            handle = self._esapi.tr_from_tpmpublic(handle=TPM2_HANDLE(index))
        except TSS2_Exception as e:
            raise StateError(f"this TPM has no security version counter at {index:#x}: "
                             "it was not provisioned") from e
        stack.callback(self._esapi.tr_close, handle)
        return handle

    def define_counter(self, index: int = tpmpolicy.DEFAULT_COUNTER_INDEX) -> int:
        """Provisioning: define the counter once (owner auth) and make it readable;
        returns its value. A counter already there with the right attributes is kept."""
        public = TPM2B_NV_PUBLIC(nvPublic=TPMS_NV_PUBLIC(
            nvIndex=index, nameAlg=TPM2_ALG.SHA384,
            attributes=tpmpolicy.COUNTER_ATTRIBUTES, authPolicy=b"",
            dataSize=tpmpolicy.COUNTER_SIZE))
        with ExitStack() as stack:
            if self._defined(index):
                handle = self._counter(stack, index)
            else:
                with _tss(f"define NV index {index:#x}"):
                    handle = self._esapi.nv_define_space(auth=None, public_info=public,
                                                         auth_handle=ESYS_TR.OWNER)
                stack.callback(self._esapi.tr_close, handle)
            with _tss("read the counter's public area"):
                _, name = self._esapi.nv_read_public(nv_index=handle)
            if bytes(name) != tpmpolicy.counter_name(index):
                if not self._unwritten(handle, index):
                    raise StateError(f"NV index {index:#x} holds something else than an "
                                     "edgeward security version counter")
                with _tss("increment the security version counter"):
                    self._esapi.nv_increment(nv_index=handle, auth_handle=ESYS_TR.OWNER)
            return self._read(handle)

    def _defined(self, index: int) -> bool:
        with _tss("list NV indices"):
            _, data = self._esapi.get_capability(capability=TPM2_CAP.HANDLES, prop=index,
                                                 property_count=1)
        handles = list(data.data.handles)
        return bool(handles) and int(handles[0]) == index

    def _unwritten(self, handle: ESYS_TR, index: int) -> bool:
        with _tss("read the counter's public area"):
            _, name = self._esapi.nv_read_public(nv_index=handle)
        unwritten = struct.pack(">H", tpmpolicy.ALG_SHA384) + sha384(
            tpmpolicy.counter_public(index, written=False))
        return bytes(name) == unwritten

    def _read(self, handle: ESYS_TR) -> int:
        with _tss("read the security version counter"):
            data = self._esapi.nv_read(nv_index=handle, size=tpmpolicy.COUNTER_SIZE,
                                       offset=0, auth_handle=handle)
        return int.from_bytes(bytes(data), "big")

    def read_counter(self, index: int = tpmpolicy.DEFAULT_COUNTER_INDEX) -> int:
        with ExitStack() as stack:
            return self._read(self._counter(stack, index))

    def advance_counter_to(self, version: int,
                           index: int = tpmpolicy.DEFAULT_COUNTER_INDEX) -> int:
        """Increment the counter up to ``version`` (never down); returns its value."""
        tpmpolicy.version_operand(version)
        with ExitStack() as stack:
            handle = self._counter(stack, index)
            value = self._read(handle)
            if version - value > MAX_INCREMENTS:
                raise InputError(f"security version {version} is more than "
                                 f"{MAX_INCREMENTS} steps past the counter ({value})")
            while value < version:
                with _tss("increment the security version counter"):
                    self._esapi.nv_increment(nv_index=handle, auth_handle=ESYS_TR.OWNER)
                value = self._read(handle)
            return value

    # --- sealing ---------------------------------------------------------------------
    def _primary(self, stack: ExitStack) -> ESYS_TR:
        template, attributes = SRK_TEMPLATE
        with _tss("create the storage primary key"):
            handle = self._esapi.create_primary(
                in_sensitive=None,
                in_public=TPM2B_PUBLIC.parse(template, objectAttributes=attributes),
                primary_handle=ESYS_TR.OWNER)[0]
        stack.callback(self._esapi.flush_context, handle)
        return handle

    def _session(self, stack: ExitStack, primary: ESYS_TR, kind: TPM2_SE,
                 attributes: int) -> ESYS_TR:
        with _tss("start a session"):
            session = self._esapi.start_auth_session(
                tpm_key=primary, bind=ESYS_TR.NONE, session_type=kind,
                symmetric=TPMT_SYM_DEF.parse(_SESSION_SYMMETRIC),
                auth_hash=TPM2_ALG.SHA384)
            self._esapi.trsess_set_attributes(session=session, attributes=attributes)
        stack.callback(self._esapi.flush_context, session)
        return session

    def seal(self, secret: bytes, authority: ec.EllipticCurvePublicKey,
             policy_ref: bytes) -> bytes:
        """Seal ``secret`` so that only policies ``authority`` approves open it."""
        if not 0 < len(secret) <= MAX_SECRET:
            raise InputError(f"a sealed secret is 1 to {MAX_SECRET} bytes")
        public = TPM2B_PUBLIC(publicArea=TPMT_PUBLIC(
            type=TPM2_ALG.KEYEDHASH, nameAlg=TPM2_ALG.SHA384,
            objectAttributes=SEALED_ATTRIBUTES,
            authPolicy=tpmpolicy.sealed_auth_policy(authority, policy_ref)))
        public.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG.NULL
        sensitive = TPM2B_SENSITIVE_CREATE(sensitive=TPMS_SENSITIVE_CREATE(data=secret))
        with ExitStack() as stack:
            primary = self._primary(stack)
            session = self._session(stack, primary, TPM2_SE.HMAC,
                                    TPMA_SESSION.DECRYPT | TPMA_SESSION.CONTINUESESSION)
            with _tss("create the sealed object"):
                private, out_public = self._esapi.create(
                    parent_handle=primary, in_sensitive=sensitive, in_public=public,
                    session1=session)[:2]
        return MAGIC + bytes(out_public.marshal()) + bytes(private.marshal())

    def _check_public(self, public: TPM2B_PUBLIC, authority: ec.EllipticCurvePublicKey,
                      policy_ref: bytes) -> None:
        area = public.publicArea
        if (area.type != TPM2_ALG.KEYEDHASH or area.nameAlg != TPM2_ALG.SHA384
                or int(area.objectAttributes) != int(SEALED_ATTRIBUTES)):
            raise IntegrityError("sealed key: not a sealed object edgeward made")
        if not same(bytes(area.authPolicy),
                    tpmpolicy.sealed_auth_policy(authority, policy_ref)):
            raise SignatureError("the sealed key is bound to another policy authority "
                                 "or policy reference")

    def _ticket(self, stack: ExitStack, approved: tpmpolicy.ApprovedPolicy,
                authority: ec.EllipticCurvePublicKey, policy_ref: bytes) -> object:
        """The TPM's own check of the authority's signature over the approved policy."""
        area, _ = TPMT_PUBLIC.unmarshal(tpmpolicy.authority_public(authority))
        with _tss("load the policy authority's public key"):
            key = self._esapi.load_external(in_public=TPM2B_PUBLIC(publicArea=area),
                                            hierarchy=ESYS_TR.OWNER)
        stack.callback(self._esapi.flush_context, key)
        r, s = approved.signature_rs()
        signature = TPMT_SIGNATURE(sigAlg=TPM2_ALG.ECDSA, signature=TPMU_SIGNATURE(
            ecdsa=TPMS_SIGNATURE_ECC(hash=TPM2_ALG.SHA384, signatureR=r.to_bytes(48, "big"),
                                     signatureS=s.to_bytes(48, "big"))))
        digest = tpmpolicy.authorization_hash(approved.digest(), policy_ref)
        try:
            return self._esapi.verify_signature(key_handle=key, digest=digest,
                                                signature=signature)
        except TSS2_Exception as e:
            if _rc(e) in (TPM2_RC.SIGNATURE, TPM2_RC.VALUE, TPM2_RC.SCHEME):
                raise SignatureError("the approved TPM policy is not signed by the "
                                     "policy authority") from e
            raise ToolError("the TPM could not check the approved policy's signature") from e

    def unseal(self, blob: bytes, approved: tpmpolicy.ApprovedPolicy,
               authority: ec.EllipticCurvePublicKey, policy_ref: bytes) -> bytes:
        """Open ``blob`` if this boot's PCRs and counter satisfy ``approved``, which
        ``authority`` must have signed; a project error for every refusal."""
        public, private = _blob_parts(blob)
        self._check_public(public, authority, policy_ref)
        with ExitStack() as stack:
            primary = self._primary(stack)
            try:
                sealed = self._esapi.load(parent_handle=primary, in_private=private,
                                          in_public=public)
            except TSS2_Exception as e:
                raise IntegrityError("the sealed key was not made by this TPM (another "
                                     "board's, or damaged)") from e
            stack.callback(self._esapi.flush_context, sealed)
            ticket = self._ticket(stack, approved, authority, policy_ref)
            counter = self._counter(stack, approved.counter_index)
            session = self._session(stack, primary, TPM2_SE.POLICY,
                                    TPMA_SESSION.ENCRYPT | TPMA_SESSION.CONTINUESESSION)
            self._policy_pcr(session, approved)
            self._policy_nv(session, counter, approved)
            with _tss("authorize the approved policy"):
                self._esapi.policy_authorize(
                    policy_session=session, approved_policy=approved.digest(),
                    policy_ref=policy_ref,
                    key_sign=tpmpolicy.authority_name(authority), check_ticket=ticket)
            try:
                return bytes(self._esapi.unseal(item_handle=sealed, session1=session))
            except TSS2_Exception as e:
                raise SignatureError("the sealed key's policy was not satisfied") from e

    def _policy_pcr(self, session: ESYS_TR, approved: tpmpolicy.ApprovedPolicy) -> None:
        selection = ",".join(str(p) for p in approved.pcrs)
        try:
            self._esapi.policy_pcr(
                policy_session=session, pcr_digest=tpmpolicy.pcr_digest(approved.values),
                pcrs=TPML_PCR_SELECTION.parse(f"sha384:{selection}"))
        except TSS2_Exception as e:
            if _rc(e) == TPM2_RC.VALUE:
                raise IntegrityError(f"the boot chain measured in PCR {selection} is not "
                                     "the one the approved policy names") from e
            raise ToolError("the TPM refused the PCR policy") from e

    def _policy_nv(self, session: ESYS_TR, counter: ESYS_TR,
                   approved: tpmpolicy.ApprovedPolicy) -> None:
        try:
            self._esapi.policy_nv(
                auth_handle=counter, nv_index=counter, policy_session=session,
                operand_b=tpmpolicy.version_operand(approved.security_version),
                operation=TPM2_EO.UNSIGNED_LE, offset=0)
        except TSS2_Exception as e:
            if _rc(e) == TPM2_RC.POLICY:
                raise RollbackError(f"the approved policy is for security version "
                                    f"{approved.security_version}, below this device's "
                                    f"counter ({self._read(counter)})") from e
            raise ToolError("the TPM refused the security version policy") from e

