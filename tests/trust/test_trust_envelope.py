"""DSSE envelopes and detached signatures, with real P-384 and Ed25519 keys."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from edgeward.errors import EnvelopeError, SignatureError
from edgeward.trust import keys
from edgeward.trust.envelope import Envelope, open_envelope, pae, parse_envelope, seal_envelope
from edgeward.trust.keys import Algorithm, PrivateKey
from edgeward.trust.signing import Signature, sign, verify_any, verify_with

TYPE = "application/vnd.edgeward.test+json"
PAYLOAD = b'{"hello":"gateway"}'
ALGORITHMS = [Algorithm.ECDSA_P384, Algorithm.ED25519]


def trusted(*private: PrivateKey) -> dict[str, Any]:
    return {keys.keyid(k.public_key()): k.public_key() for k in private}


def edit(data: bytes, **changes: Any) -> bytes:
    doc = json.loads(data)
    doc.update(changes)
    return json.dumps(doc).encode()


@pytest.fixture(scope="module")
def three() -> list[PrivateKey]:
    return [keys.generate(), keys.generate(Algorithm.ED25519), keys.generate()]


# ---------------------------------------------------------------------------- PAE, round trip


def test_pae_is_dsse_v1() -> None:
    assert pae("t/x", b"hi") == b"DSSEv1 3 t/x 2 hi"
    assert pae("é", b"") == "DSSEv1 2 é 0 ".encode()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_round_trip(algorithm: Algorithm) -> None:
    key = keys.generate(algorithm)
    data = seal_envelope(TYPE, PAYLOAD, [key]).to_json()
    payload, signers = open_envelope(data, TYPE, trusted(key))
    assert payload == PAYLOAD
    assert signers == [keys.keyid(key.public_key())]
    parsed = parse_envelope(data)
    assert parsed == Envelope(TYPE, PAYLOAD, parsed.signatures)
    assert parsed.to_json() == data
    assert json.loads(data)["payload"] == base64.b64encode(PAYLOAD).decode()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_signature_is_over_pae_not_the_bare_payload(algorithm: Algorithm) -> None:
    key = keys.generate(algorithm)
    (signature,) = seal_envelope(TYPE, PAYLOAD, [key]).signatures
    verify_with(key.public_key(), pae(TYPE, PAYLOAD), signature, "x")
    with pytest.raises(SignatureError, match="does not verify"):
        verify_with(key.public_key(), PAYLOAD, signature, "x")


def test_empty_payload_round_trips() -> None:
    key = keys.generate(Algorithm.ED25519)
    data = seal_envelope(TYPE, b"", [key]).to_json()
    assert open_envelope(data, TYPE, trusted(key))[0] == b""


def test_seal_needs_a_key() -> None:
    with pytest.raises(ValueError, match="at least one signing key"):
        seal_envelope(TYPE, PAYLOAD, [])


# ---------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_wrong_payload_type_refused(algorithm: Algorithm) -> None:
    key = keys.generate(algorithm)
    data = seal_envelope("application/vnd.edgeward.bl2+json", PAYLOAD, [key]).to_json()
    with pytest.raises(EnvelopeError) as info:
        open_envelope(data, "application/vnd.edgeward.kernel-bundle+json", trusted(key), "doc")
    assert str(info.value) == ("doc: payload type 'application/vnd.edgeward.bl2+json', "
                               "expected 'application/vnd.edgeward.kernel-bundle+json'")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_retyped_envelope_does_not_verify(algorithm: Algorithm) -> None:
    """PAE binds the type: relabelling a signed envelope breaks the signature."""
    key = keys.generate(algorithm)
    data = edit(seal_envelope("type/a", PAYLOAD, [key]).to_json(), payloadType="type/b")
    with pytest.raises(SignatureError, match="does not verify"):
        open_envelope(data, "type/b", trusted(key))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_untrusted_key_refused(algorithm: Algorithm) -> None:
    key, stranger = keys.generate(algorithm), keys.generate(algorithm)
    data = seal_envelope(TYPE, PAYLOAD, [stranger]).to_json()
    with pytest.raises(SignatureError, match="^doc: not signed by any trusted key$"):
        open_envelope(data, TYPE, trusted(key), "doc")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_untrusted_key_claiming_a_trusted_keyid_refused(algorithm: Algorithm) -> None:
    key, stranger = keys.generate(algorithm), keys.generate(algorithm)
    forged = sign(stranger, pae(TYPE, PAYLOAD))
    forged = Signature(keys.keyid(key.public_key()), forged.sig)
    data = Envelope(TYPE, PAYLOAD, (forged,)).to_json()
    with pytest.raises(SignatureError, match="does not verify"):
        open_envelope(data, TYPE, trusted(key))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("altered", [b'{"hello":"gateway!"}', b"", PAYLOAD + b" "])
def test_altered_payload_refused(algorithm: Algorithm, altered: bytes) -> None:
    key = keys.generate(algorithm)
    data = edit(seal_envelope(TYPE, PAYLOAD, [key]).to_json(),
                payload=base64.b64encode(altered).decode())
    with pytest.raises(SignatureError) as info:
        open_envelope(data, TYPE, trusted(key), "doc")
    assert str(info.value) == ("doc: the signature by the trusted key does not verify "
                               "(the signed bytes were altered or the signature forged)")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_altered_signature_refused(algorithm: Algorithm) -> None:
    key = keys.generate(algorithm)
    envelope = seal_envelope(TYPE, PAYLOAD, [key])
    (signature,) = envelope.signatures
    for at in (0, len(signature.sig) // 2, len(signature.sig) - 1):
        sig = bytearray(signature.sig)
        sig[at] ^= 0x01
        bad = Envelope(TYPE, PAYLOAD, (Signature(signature.keyid, bytes(sig)),))
        with pytest.raises(SignatureError):
            open_envelope(bad.to_json(), TYPE, trusted(key))


def test_untrusted_signatures_are_ignored_next_to_a_trusted_one(three: list[PrivateKey]) -> None:
    stranger = keys.generate()
    data = seal_envelope(TYPE, PAYLOAD, [stranger, three[1]]).to_json()
    _, signers = open_envelope(data, TYPE, trusted(*three))
    assert signers == [keys.keyid(three[1].public_key())]


# ---------------------------------------------------------------------------- thresholds


def test_threshold_two_of_three(three: list[PrivateKey]) -> None:
    ids = [keys.keyid(k.public_key()) for k in three]
    two = seal_envelope(TYPE, PAYLOAD, [three[0], three[2]]).to_json()
    _, signers = open_envelope(two, TYPE, trusted(*three), threshold=2)
    assert signers == [ids[0], ids[2]]
    every = seal_envelope(TYPE, PAYLOAD, three).to_json()
    assert open_envelope(every, TYPE, trusted(*three), threshold=2)[1] == ids
    one = seal_envelope(TYPE, PAYLOAD, [three[1]]).to_json()
    with pytest.raises(SignatureError,
                       match=r"^doc: 1 valid signature\(s\) from trusted keys, 2 required$"):
        open_envelope(one, TYPE, trusted(*three), "doc", threshold=2)


def test_threshold_counts_only_trusted_keys(three: list[PrivateKey]) -> None:
    data = seal_envelope(TYPE, PAYLOAD, [three[0], keys.generate()]).to_json()
    with pytest.raises(SignatureError, match="1 valid signature"):
        open_envelope(data, TYPE, trusted(*three), threshold=2)


def test_threshold_counts_only_valid_signatures(three: list[PrivateKey]) -> None:
    good = seal_envelope(TYPE, PAYLOAD, three[:2]).signatures
    broken = Signature(good[1].keyid, bytes(64))
    data = Envelope(TYPE, PAYLOAD, (good[0], broken)).to_json()
    with pytest.raises(SignatureError, match="1 valid signature"):
        open_envelope(data, TYPE, trusted(*three), threshold=2)


def test_duplicate_signatures_by_one_key_count_once(three: list[PrivateKey]) -> None:
    key = three[0]  # ECDSA is randomized: two signatures, distinct bytes, same key
    first, second = (sign(key, pae(TYPE, PAYLOAD)) for _ in range(2))
    assert first.sig != second.sig
    for signatures in ((first, first), (first, second), (first, second, first)):
        data = Envelope(TYPE, PAYLOAD, signatures).to_json()
        _, signers = open_envelope(data, TYPE, trusted(*three))
        assert signers == [keys.keyid(key.public_key())]
        with pytest.raises(SignatureError, match="1 valid signature.*2 required"):
            open_envelope(data, TYPE, trusted(*three), threshold=2)


def test_threshold_below_one_is_a_programming_error(three: list[PrivateKey]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        verify_any(trusted(*three), b"m", [sign(three[0], b"m")], "x", threshold=0)


# ---------------------------------------------------------------------------- key ids, JSON

ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")  # RFC 8410


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_keyid_is_sha384_of_spki_der(algorithm: Algorithm) -> None:
    key = keys.generate(algorithm)
    public = key.public_key()
    expected = hashlib.sha384(keys.public_der(public)).hexdigest()
    assert keys.keyid(public) == expected
    assert keys.key_hash(public) == bytes.fromhex(expected)
    assert sign(key, b"m").keyid == expected
    assert keys.public_der(public) == keys.public_der(keys.load_public(keys.public_pem(public)))


def test_keyid_known_answer_ed25519() -> None:
    """Independent of the DER writer: SPKI for Ed25519 is a fixed prefix + the raw key."""
    private = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    raw = private.public_key().public_bytes_raw()
    assert keys.public_der(private.public_key()) == ED25519_SPKI_PREFIX + raw
    assert keys.keyid(private.public_key()) == hashlib.sha384(
        ED25519_SPKI_PREFIX + raw).hexdigest()


def test_signature_json_round_trip(three: list[PrivateKey]) -> None:
    signature = sign(three[0], b"m")
    assert Signature.from_json(signature.to_json()) == signature


@pytest.mark.parametrize(("doc", "fragment"), [
    ({"keyid": "AB" * 48, "sig": "AA=="}, "keyid must be lowercase hex"),
    ({"keyid": "ab" * 47, "sig": "AA=="}, "96 hex characters"),
    ({"keyid": "ab" * 48, "sig": ""}, "empty signature"),
    ({"keyid": "ab" * 48, "sig": "A" * 600}, "longer than 512"),
    ({"keyid": "ab" * 48}, "missing field(s) sig"),
    ({"keyid": "ab" * 48, "sig": "AA==", "alg": "none"}, "unknown field(s) alg"),
])
def test_signature_json_refusals(doc: dict[str, str], fragment: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        Signature.from_json(json.dumps(doc).encode())
    assert fragment in str(info.value)
    assert str(info.value).startswith("signature")


def test_parse_envelope_refusals(three: list[PrivateKey]) -> None:
    good = json.loads(seal_envelope(TYPE, PAYLOAD, three).to_json())
    cases = [
        ({**good, "signatures": []}, "no signatures"),
        ({**good, "signatures": good["signatures"] * 6}, "more than 16 items"),
        ({**good, "signatures": ["x"]}, "signature 0 must be an object"),
        ({**good, "payload": "%%%"}, "'payload' is not valid base64"),
        ({**good, "payloadType": 7}, "'payloadType' must be a string"),
    ]
    for doc, fragment in cases:
        with pytest.raises(EnvelopeError, match=fragment):
            parse_envelope(json.dumps(doc).encode())
