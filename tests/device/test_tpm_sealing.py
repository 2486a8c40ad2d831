"""The /data key sealed in a TPM (a real swtpm, real tpm2-pytss): it opens for a
boot chain the authority approved, at or above the device's security version,
on this chip, once per boot; for nothing else."""

from __future__ import annotations

import json
import os
import stat

import pytest
from tpm2_pytss import (
    ESAPI,
    ESYS_TR,
    TPM2_ALG,
    TPM2_EO,
    TPM2_HANDLE,
    TPM2_RH,
    TPM2_SE,
    TPM2_ST,
    TPM2B_PUBLIC,
    TPML_PCR_SELECTION,
    TPMT_PUBLIC,
    TPMT_TK_VERIFIED,
)

from edgeward.board import swtpm
from edgeward.device.storage.tpm import DOOR, MAGIC, Tpm
from edgeward.errors import (
    InputError,
    IntegrityError,
    RollbackError,
    SecurityError,
    SignatureError,
    StateError,
)
from edgeward.trust import tpmpolicy
from edgeward.trust.digest import DIGEST_SIZE, sha384
from tests.device.tpm_side import (
    AUTHORITY,
    GOOD,
    PCR,
    REF,
    STRANGER,
    TAMPERED,
    UPDATE,
    Chips,
    approve,
    boot,
    chips_fixture,  # noqa: F401 (fixture)
    expected,
    provision,
)

KEY = os.urandom(32)


def _sealed(chip: swtpm.SoftwareTpm) -> bytes:
    with Tpm(chip.tcti) as tpm:
        return tpm.seal(KEY, AUTHORITY.public_key(), REF)


def _unseal(chip: swtpm.SoftwareTpm, blob: bytes, policy: tpmpolicy.ApprovedPolicy,
            chain: list[bytes] | None = None) -> bytes:
    with Tpm(chip.tcti) as tpm:
        if chain is not None:
            boot(tpm, chain)
        return tpm.unseal(blob, policy, AUTHORITY.public_key(), REF)


# --- the software digests are the TPM's ------------------------------------------------

def test_names_computed_in_software_are_the_tpms(chips: Chips) -> None:
    chip = chips("a")
    provision(chip)
    esapi = ESAPI(chip.tcti)
    try:
        area, _ = TPMT_PUBLIC.unmarshal(tpmpolicy.authority_public(AUTHORITY.public_key()))
        key = esapi.load_external(in_public=TPM2B_PUBLIC(publicArea=area),
                                  hierarchy=ESYS_TR.OWNER)
        assert bytes(esapi.tr_get_name(key)) == tpmpolicy.authority_name(
            AUTHORITY.public_key())
        esapi.flush_context(key)
        counter = esapi.tr_from_tpmpublic(handle=TPM2_HANDLE(tpmpolicy.DEFAULT_COUNTER_INDEX))
        _, name = esapi.nv_read_public(nv_index=counter)
        assert bytes(name) == tpmpolicy.counter_name(tpmpolicy.DEFAULT_COUNTER_INDEX)
    finally:
        esapi.close()


@pytest.mark.parametrize("pcrs", [[PCR], [0, 7, 8, 15]])
def test_policy_digests_match_a_trial_session(chips: Chips, pcrs: list[int]) -> None:
    chip = chips("a")
    provision(chip)
    values = [sha384(bytes([p])) for p in pcrs]
    esapi = ESAPI(chip.tcti)
    try:
        trial = esapi.start_auth_session(
            tpm_key=ESYS_TR.NONE, bind=ESYS_TR.NONE, session_type=TPM2_SE.TRIAL,
            symmetric=None, auth_hash=TPM2_ALG.SHA384)
        esapi.policy_pcr(policy_session=trial, pcr_digest=tpmpolicy.pcr_digest(values),
                         pcrs=TPML_PCR_SELECTION.parse(
                             "sha384:" + ",".join(str(p) for p in pcrs)))
        assert bytes(esapi.policy_get_digest(policy_session=trial)) == tpmpolicy.policy_pcr(
            bytes(DIGEST_SIZE), pcrs, values)
        counter = esapi.tr_from_tpmpublic(handle=TPM2_HANDLE(tpmpolicy.DEFAULT_COUNTER_INDEX))
        esapi.policy_nv(auth_handle=counter, nv_index=counter, policy_session=trial,
                        operand_b=tpmpolicy.version_operand(7),
                        operation=TPM2_EO.UNSIGNED_LE, offset=0)
        approved = bytes(esapi.policy_get_digest(policy_session=trial))
        assert approved == tpmpolicy.approved_digest(pcrs, values, 7)
        null_ticket = TPMT_TK_VERIFIED(tag=TPM2_ST.VERIFIED, hierarchy=TPM2_RH.NULL)
        esapi.policy_authorize(policy_session=trial, approved_policy=approved,
                               policy_ref=REF,
                               key_sign=tpmpolicy.authority_name(AUTHORITY.public_key()),
                               check_ticket=null_ticket)
        assert bytes(esapi.policy_get_digest(policy_session=trial)) == \
            tpmpolicy.sealed_auth_policy(AUTHORITY.public_key(), REF)
        esapi.flush_context(trial)
    finally:
        esapi.close()


def test_pcrs_extend_as_the_software_replay(chips: Chips) -> None:
    with Tpm(chips("a").tcti) as tpm:
        assert tpm.read_pcr(PCR) == bytes(DIGEST_SIZE)
        boot(tpm, GOOD)
        assert tpm.read_pcr(PCR) == expected(GOOD)
        tpm.close_door(PCR)
        assert tpm.read_pcr(PCR) == expected([*GOOD, DOOR])


# --- the sealed key ------------------------------------------------------------------------

def test_a_good_chain_opens_it_once_per_boot(chips: Chips) -> None:
    chip = chips("a")
    provision(chip)
    blob = _sealed(chip)
    assert KEY not in blob and blob.startswith(MAGIC)
    with Tpm(chip.tcti) as tpm:
        boot(tpm, GOOD)
        assert tpm.unseal(blob, approve(GOOD, 1), AUTHORITY.public_key(), REF) == KEY
        tpm.close_door(PCR)
        with pytest.raises(IntegrityError, match="boot chain"):
            tpm.unseal(blob, approve(GOOD, 1), AUTHORITY.public_key(), REF)
    chip.stop()  # reboot: PCRs reset, the counter stays
    chip = chips("a")
    assert _unseal(chip, blob, approve(GOOD, 1), GOOD) == KEY


def test_a_tampered_chain_is_refused(chips: Chips) -> None:
    chip = chips("a")
    provision(chip)
    blob = _sealed(chip)
    with pytest.raises(IntegrityError, match="boot chain"):
        _unseal(chip, blob, approve(GOOD, 1), TAMPERED)
    chip.stop()
    chip = chips("a")
    with pytest.raises(IntegrityError, match="boot chain"):  # nor half a good one
        _unseal(chip, blob, approve(GOOD, 1), GOOD[:2])


def test_a_policy_signed_by_another_key_is_refused(chips: Chips) -> None:
    chip = chips("a")
    provision(chip)
    blob = _sealed(chip)
    with pytest.raises(SignatureError, match="not signed by the policy authority"):
        _unseal(chip, blob, approve(GOOD, 1, STRANGER), GOOD)
    with Tpm(chip.tcti) as tpm:  # the stranger naming itself the authority
        with pytest.raises(SignatureError, match="another policy authority"):
            tpm.unseal(blob, approve(GOOD, 1, STRANGER), STRANGER.public_key(), REF)
        with pytest.raises(SignatureError):  # nor another policy reference
            tpm.unseal(blob, approve(GOOD, 1), AUTHORITY.public_key(), b"another ref")


def test_a_downgrade_is_refused_and_an_update_needs_no_reseal(chips: Chips) -> None:
    chip = chips("a")
    provision(chip, version=1)
    blob = _sealed(chip)
    old = approve(GOOD, 1)
    assert _unseal(chip, blob, old, GOOD) == KEY
    chip.stop()
    chip = chips("a")
    with Tpm(chip.tcti) as tpm:  # the update to security version 2 is installed
        assert tpm.advance_counter_to(2) == 2
        assert tpm.advance_counter_to(1) == 2  # never down
        assert tpm.read_counter() == 2
    with pytest.raises(RollbackError, match="security version 1, below .*counter \\(2\\)"):
        _unseal(chip, blob, old, GOOD)  # the old chain, its old approved policy replayed
    chip.stop()
    chip = chips("a")
    assert _unseal(chip, blob, approve(UPDATE, 2), UPDATE) == KEY  # the same blob
    chip.stop()
    chip = chips("a")
    assert _unseal(chip, blob, approve(UPDATE, 3), UPDATE) == KEY  # counter <= version


def test_the_blob_is_useless_on_another_board(chips: Chips) -> None:
    chip = chips("a")
    provision(chip)
    blob = _sealed(chip)
    other = chips("b")
    provision(other)
    with pytest.raises(IntegrityError, match="not made by this TPM"):
        _unseal(other, blob, approve(GOOD, 1), GOOD)


def test_malformed_or_damaged_blobs(chips: Chips) -> None:
    chip = chips("a")
    provision(chip)
    blob = _sealed(chip)
    for bad in (b"", b"garbage", MAGIC, blob[:-5], blob + b"\0", b"X" + blob[1:],
                MAGIC + b"\xff" * 5000):
        with pytest.raises(InputError):
            _unseal(chip, bad, approve(GOOD, 1), GOOD)
    flipped = bytearray(blob)
    flipped[-10] ^= 1  # inside the private part's encrypted sensitive area
    with pytest.raises(IntegrityError):
        _unseal(chip, bytes(flipped), approve(GOOD, 1), GOOD)


def test_no_counter_no_unseal(chips: Chips) -> None:
    chip = chips("a")
    blob = _sealed(chip)
    with pytest.raises(StateError, match="not provisioned"):
        _unseal(chip, blob, approve(GOOD, 1), GOOD)


def test_the_chip_state_is_private(chips: Chips) -> None:
    chip = chips("a")
    chip.stop()
    assert stat.S_IMODE(chip.state_dir.stat().st_mode) == 0o700
    for entry in chip.state_dir.iterdir():
        assert stat.S_IMODE(entry.stat().st_mode) == 0o600, entry.name


# --- approved policies on the wire ------------------------------------------------------

def test_approved_policy_round_trip() -> None:
    policy = approve(GOOD, 4)
    assert tpmpolicy.ApprovedPolicy.decode(policy.encode()) == policy
    tpmpolicy.verify(policy, AUTHORITY.public_key(), REF)
    with pytest.raises(SignatureError):
        tpmpolicy.verify(policy, STRANGER.public_key(), REF)


@pytest.mark.parametrize("change", [
    {"format": "other"}, {"pcrs": [16]}, {"pcrs": [8, 8]}, {"pcrs": [9, 8]}, {"pcrs": []},
    {"pcrs": [True]}, {"values": ["00"]}, {"values": []}, {"values": [1]},
    {"security_version": -1}, {"security_version": 2**64}, {"counter_index": 5},
    {"signature": "00" * 95}, {"signature": "XY" * 96}, {"extra": 1},
])
def test_malformed_approved_policies(change: dict[str, object]) -> None:
    obj = json.loads(approve(GOOD, 1).encode())
    obj.update(change)
    with pytest.raises(InputError):
        tpmpolicy.ApprovedPolicy.decode(json.dumps(obj).encode())


@pytest.mark.parametrize("data", [b"", b"[]", b"{", b"\xff", b"{}" + b" " * 20000])
def test_undecodable_approved_policies(data: bytes) -> None:
    with pytest.raises(InputError):
        tpmpolicy.ApprovedPolicy.decode(data)


def test_every_refusal_is_a_security_error_without_key_material(chips: Chips) -> None:
    chip = chips("a")
    provision(chip)
    blob = _sealed(chip)
    for policy, chain in ((approve(GOOD, 1), TAMPERED), (approve(GOOD, 1, STRANGER), GOOD)):
        chip.stop()
        chip = chips("a")
        with pytest.raises(SecurityError) as refused:
            _unseal(chip, blob, policy, chain)
        assert KEY.hex() not in str(refused.value) and "\n" not in str(refused.value)
