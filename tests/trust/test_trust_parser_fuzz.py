"""Property tests of every parser of untrusted bytes in the trust core.

The contract (``edgeward.errors``): a parser given anything at all either
returns a valid object or raises an :class:`~edgeward.errors.Error` (of the
family that parser documents) whose message is one non-empty line. Nothing
else may escape: no ``KeyError``, ``TypeError``, ``ValueError``,
``binascii.Error``, ``UnicodeDecodeError``, ``RecursionError``...

Inputs are arbitrary bytes, JSON-looking bytes, arbitrary JSON values, JSON
objects with the right keys and arbitrary values, and mutations of valid,
really signed documents (drop a key, add a key, change a value's type, replace
a value, duplicate a key, flip a byte, truncate, insert or delete a byte).
The payload mutations are also re-signed by the trusted key, so the parser
behind the signature check is reached with malformed but authentic input.

Text includes control characters, line breaks and lone surrogates (``\ud800``),
which used to escape as UnicodeEncodeError or multi-line messages; the
deterministic regression tests for those live in ``test_trust_canonical.py``,
``test_trust_certs.py``, ``test_trust_quote.py`` and ``tests/board/test_bootenv.py``.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeward.errors import (
    AttestationError,
    CertificateError,
    EnvelopeError,
    Error,
    InputError,
    IntegrityError,
    KeyFileError,
    ManifestError,
    RollbackError,
    SignatureError,
)
from edgeward.trust import canonical as canon
from edgeward.trust import certs, keys, manifest, quote, sealing
from edgeward.trust import envelope as dsse
from edgeward.trust.keys import keyid
from edgeward.trust.signing import Signature, sign

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ---------------------------------------------------------------------------- strategies

# Object keys: any text, hostile text included; often one of the real field names.
FIELD_NAMES = sorted({
    "payloadType", "payload", "signatures", "keyid", "sig", "root_key", "envelope", "type",
    "version", "security_version", "kernel_keys", "code", "model", "cmdline", "kernel",
    "initrd", "rootfs", "data_size", "hash_offset", "block_size", "salt", "root_hash",
    "image_size", "algorithm", "serial", "nonce", "register", "slot", "events", "stage",
    "component", "digest", "signer", "components",
})
HOSTILE = st.sampled_from(["\ud800", "x\ny: forged", "\r", "\u2028", "\x00"])
KEYS = st.sampled_from(FIELD_NAMES) | st.text(max_size=12) | HOSTILE

B64 = st.binary(max_size=120).map(lambda b: base64.b64encode(b).decode())
HEX = st.binary(max_size=64).map(bytes.hex)
TEXT = st.text(max_size=40) | B64 | HEX | HOSTILE | st.sampled_from(
    ["bl2", "kernel-bundle", "quote", "known-good", "sha384", "a", "b", manifest.BL2_TYPE,
     manifest.KERNEL_TYPE, quote.QUOTE_TYPE, "=", "AA==", "AAA", "ff" * 48])
INTS = st.integers(min_value=-3, max_value=70) | st.integers() | st.sampled_from(
    [2**63 - 1, 2**63, 2**64, -(2**63), 1 << 40, (1 << 40) + 1, 4096, 512, 65536, 10**30])
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
SCALARS = st.none() | st.booleans() | INTS | FLOATS | TEXT

JSON = st.recursive(
    SCALARS,
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(KEYS, kids, max_size=5),
    max_leaves=25,
)

SMALL_JSON = st.recursive(
    SCALARS,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(KEYS, kids, max_size=3),
    max_leaves=6,
)

BY_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(), "bool": st.booleans(), "int": INTS, "float": FLOATS, "str": TEXT,
    "list": st.lists(SCALARS, max_size=4), "object": st.dictionaries(KEYS, SCALARS, max_size=4),
}

JSONISH = st.text(alphabet='{}[]":,0123456789.eE+-truefalsn\\ /u', max_size=200).map(
    str.encode)


def type_name(value: object) -> str:
    if value is None:
        return "null"
    for name, kind in (("bool", bool), ("int", int), ("float", float), ("str", str),
                       ("list", list), ("object", dict)):
        if isinstance(value, kind):
            return name
    raise AssertionError(value)


def dumps(value: object) -> bytes:
    """Canonical JSON (the form the signed documents use), written independently."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8", "surrogatepass")


def slots(node: object) -> list[tuple[Any, Any]]:
    """Every (container, key-or-index) in a JSON tree, outermost first."""
    out: list[tuple[Any, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((node, key))
            out.extend(slots(value))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out.append((node, index))
            out.extend(slots(value))
    return out


STRUCTURAL = ("drop", "add", "retype", "replace", "duplicate")
BYTEWISE = ("flip", "truncate", "insert", "delete")


@st.composite
def mutated(draw: st.DrawFn, doc: dict[str, Any]) -> bytes:
    """``doc`` serialized after one to three random mutations."""
    doc = copy.deepcopy(doc)
    ops = draw(st.lists(st.sampled_from(STRUCTURAL + BYTEWISE), min_size=1, max_size=3))
    duplicate: tuple[str, Any] | None = None
    for op in (o for o in ops if o in STRUCTURAL):
        places = slots(doc)
        if op == "drop" and places:
            container, key = draw(st.sampled_from(places))
            del container[key]
        elif op == "add":
            containers = [doc] + [c[k] for c, k in places if isinstance(c[k], dict | list)]
            container = draw(st.sampled_from(containers))
            if isinstance(container, dict):
                container[draw(KEYS)] = draw(JSON)
            else:
                container.insert(draw(st.integers(0, len(container))), draw(JSON))
        elif op == "retype" and places:
            container, key = draw(st.sampled_from(places))
            kind = draw(st.sampled_from([n for n in BY_TYPE if n != type_name(container[key])]))
            container[key] = draw(BY_TYPE[kind])
        elif op == "replace" and places:
            container, key = draw(st.sampled_from(places))
            container[key] = draw(JSON)
        elif op == "duplicate" and doc:
            duplicate = (draw(st.sampled_from(sorted(doc))), draw(JSON))
    data = dumps(doc)
    if duplicate is not None and data.startswith(b"{"):
        data = b"{" + dumps(duplicate[0]) + b":" + dumps(duplicate[1]) + b"," + data[1:]
    for op in (o for o in ops if o in BYTEWISE):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
        elif op == "truncate":
            data = data[:at]
        elif op == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=3)) + data[at:]
        else:
            data = data[:at] + data[at + 1:]
    return data


# ---------------------------------------------------------------------------- targets


def assert_clean(call: Callable[[], object], allowed: tuple[type[Error], ...]) -> object | None:
    """Run ``call``; an Error must be of ``allowed`` and carry one non-empty line."""
    try:
        return call()
    except Error as e:
        message = str(e)
        assert isinstance(e, allowed), f"{type(e).__name__} is not one of {allowed}: {message}"
        assert message.strip(), f"{type(e).__name__} with an empty message"
        assert message.splitlines() == [message], f"message is not one line: {message!r}"
        assert e.message == message
        return None


@dataclass(frozen=True)
class Target:
    name: str
    parse: Callable[[Any, bytes], object]  # (world, bytes) -> result
    valid: Callable[[Any], dict[str, Any]]  # world -> a valid document, as JSON
    returns: type | tuple[type, ...]
    errors: tuple[type[Error], ...]


def _envelope_doc(w: Any) -> dict[str, Any]:
    return json.loads(dsse.seal_envelope("text/plain", b"hello, gateway",
                                         [w.kernel_key, w.ed_key]).to_json())


def _trusted(w: Any) -> dict[str, Any]:
    return {keyid(k.public_key()): k.public_key() for k in (w.kernel_key, w.ed_key)}


SIGNED = (EnvelopeError, SignatureError, ManifestError, RollbackError)

TARGETS = [
    Target("load_object", lambda w, d: canon.load_object(d, "document"),
           lambda w: json.loads(w.bundle.to_payload()), dict, (InputError,)),
    Target("parse_envelope", lambda w, d: dsse.parse_envelope(d), _envelope_doc,
           dsse.Envelope, (EnvelopeError,)),
    Target("open_envelope", lambda w, d: dsse.open_envelope(d, "text/plain", _trusted(w)),
           _envelope_doc, tuple, (EnvelopeError, SignatureError)),
    Target("Signature.from_json", lambda w, d: Signature.from_json(d),
           lambda w: json.loads(sign(w.kernel_key, b"message").to_json()), Signature,
           (EnvelopeError,)),
    Target("verify_bl2", lambda w, d: manifest.verify_bl2(d, w.fused_root_hash, 0),
           lambda w: json.loads(manifest.sign_bl2(w.bl2, w.root_key)), manifest.Bl2Manifest,
           SIGNED),
    Target("Bl2Manifest.from_payload",
           lambda w, d: manifest.Bl2Manifest.from_payload(d, "signer"),
           lambda w: json.loads(w.bl2.to_payload()), manifest.Bl2Manifest, (ManifestError,)),
    Target("verify_kernel_bundle",
           lambda w, d: manifest.verify_kernel_bundle(d, (w.kernel_public,), 0),
           lambda w: json.loads(manifest.sign_kernel_bundle(w.bundle, w.kernel_key)),
           manifest.KernelBundle, SIGNED),
    Target("KernelBundle.from_payload",
           lambda w, d: manifest.KernelBundle.from_payload(d, "signer"),
           lambda w: json.loads(w.bundle.to_payload()), manifest.KernelBundle, (ManifestError,)),
    Target("Quote.from_payload", lambda w, d: quote.Quote.from_payload(d),
           lambda w: json.loads(w.quote().to_payload()), quote.Quote, (AttestationError,)),
    Target("KnownGood.from_json", lambda w, d: quote.KnownGood.from_json(d),
           lambda w: json.loads(w.known_good.to_json()), quote.KnownGood, (InputError,)),
]
IDS = [t.name for t in TARGETS]
_VALID: dict[str, dict[str, Any]] = {}


def valid_doc(target: Target, world: Any) -> dict[str, Any]:
    if target.name not in _VALID:
        _VALID[target.name] = target.valid(world)
    return _VALID[target.name]


def check(target: Target, world: Any, data: bytes) -> object | None:
    result = assert_clean(lambda: target.parse(world, data), target.errors)
    if result is not None:
        assert isinstance(result, target.returns)
    return result


# ---------------------------------------------------------------------------- tests


@pytest.mark.parametrize("target", TARGETS, ids=IDS)
def test_valid_document_parses(world: Any, target: Target) -> None:
    """The baseline the mutations start from is accepted: the fuzzing reaches deep."""
    result = target.parse(world, dumps(valid_doc(target, world)))
    assert isinstance(result, target.returns)


@pytest.mark.parametrize("target", TARGETS, ids=IDS)
@FUZZ
@given(data=st.binary(max_size=600) | JSONISH)
def test_arbitrary_bytes(world: Any, target: Target, data: bytes) -> None:
    check(target, world, data)


@pytest.mark.parametrize("target", TARGETS, ids=IDS)
@FUZZ
@given(value=JSON, ascii_only=st.booleans())
def test_arbitrary_json(world: Any, target: Target, value: object, ascii_only: bool) -> None:
    data = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    result = check(target, world, data)
    if not isinstance(value, dict):
        assert result is None, "a JSON value that is not an object was accepted"


@pytest.mark.parametrize("target", TARGETS, ids=IDS)
@FUZZ
@given(data=st.data())
def test_right_keys_arbitrary_values(world: Any, target: Target, data: st.DataObject) -> None:
    shape = valid_doc(target, world)
    doc = data.draw(st.fixed_dictionaries({key: SMALL_JSON for key in shape}))
    check(target, world, dumps(doc))


@pytest.mark.parametrize("target", TARGETS, ids=IDS)
@FUZZ
@given(data=st.data())
def test_mutated_valid_document(world: Any, target: Target, data: st.DataObject) -> None:
    check(target, world, data.draw(mutated(valid_doc(target, world))))


# Payload mutations behind a good signature: the signer is trusted, the content is not.

def _signed_bl2(world: Any, payload: bytes) -> bytes:
    envelope = dsse.seal_envelope(manifest.BL2_TYPE, payload, [world.root_key])
    return dumps({"root_key": json.loads(manifest.sign_bl2(world.bl2, world.root_key))["root_key"],
                  "envelope": json.loads(envelope.to_json())})


def _signed_bundle(world: Any, payload: bytes) -> bytes:
    return dsse.seal_envelope(manifest.KERNEL_TYPE, payload, [world.kernel_key]).to_json()


def _signed_quote(world: Any, payload: bytes) -> bytes:
    return dsse.seal_envelope(quote.QUOTE_TYPE, payload, [world.device_key]).to_json()


SIGNED_TARGETS = [
    ("verify_bl2", lambda w: json.loads(w.bl2.to_payload()),
     lambda w, p: manifest.verify_bl2(_signed_bl2(w, p), w.fused_root_hash, 0),
     manifest.Bl2Manifest, SIGNED),
    ("verify_kernel_bundle", lambda w: json.loads(w.bundle.to_payload()),
     lambda w, p: manifest.verify_kernel_bundle(_signed_bundle(w, p), (w.kernel_public,), 0),
     manifest.KernelBundle, SIGNED),
    ("verify_quote", lambda w: json.loads(w.quote().to_payload()),
     lambda w, p: quote.verify_quote(_signed_quote(w, p), w.device_cert, [w.ca_cert], w.nonce,
                                     w.known_good, w.now),
     quote.QuoteVerdict, (AttestationError, CertificateError)),
]


@pytest.mark.parametrize(("name", "payload", "verify", "returns", "errors"), SIGNED_TARGETS,
                         ids=[t[0] for t in SIGNED_TARGETS])
def test_signed_valid_payload_verifies(world: Any, name: str, payload: Any, verify: Any,
                                       returns: type, errors: Any) -> None:
    assert isinstance(verify(world, dumps(payload(world))), returns)


@pytest.mark.parametrize(("name", "payload", "verify", "returns", "errors"), SIGNED_TARGETS,
                         ids=[t[0] for t in SIGNED_TARGETS])
@FUZZ
@given(data=st.data())
def test_signed_mutated_payload(world: Any, name: str, payload: Any, verify: Any,
                                returns: type, errors: tuple[type[Error], ...],
                                data: st.DataObject) -> None:
    key = f"signed:{name}"
    if key not in _VALID:
        _VALID[key] = payload(world)
    body = data.draw(mutated(_VALID[key]))
    result = assert_clean(lambda: verify(world, body), errors)
    if result is not None:
        assert isinstance(result, returns)


@pytest.mark.parametrize("target", TARGETS, ids=IDS)
@pytest.mark.parametrize("depth", [10, 500, 5000, 100_000])
def test_deep_nesting(world: Any, target: Target, depth: int) -> None:
    """Nesting far past the recursion limit is refused as an Error, not a RecursionError."""
    for opener, closer in ((b"[", b"]"), (b'{"a":', b"}")):
        data = b'{"payloadType":' + opener * depth + b"0" + closer * depth + b"}"
        check(target, world, data)


# ---------------------------------------------------------------------------- binary inputs
# The parsers above hand base64-decoded bytes to these; they must keep to the contract too.


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    for _ in range(draw(st.integers(1, 3))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        if op == "flip":
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
        elif op == "truncate":
            data = data[:at]
        elif op == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
        else:
            data = data[:at] + data[at + 1:]
    return data


PASSPHRASE = b"fuzz passphrase"


def _binary_targets(w: Any) -> dict[str, tuple[bytes, Callable[[bytes], object],
                                               tuple[type[Error], ...]]]:
    return {
        "load_public(der)": (keys.public_der(w.kernel_public), keys.load_public, (KeyFileError,)),
        "load_public(pem)": (keys.public_pem(w.ed_key.public_key()), keys.load_public,
                             (KeyFileError,)),
        "load_private(pem)": (keys.private_pem(w.kernel_key), keys.load_private,
                              (KeyFileError,)),
        "load_private(encrypted)": (keys.private_pem(w.ed_key, PASSPHRASE),
                                    lambda d: keys.load_private(d, PASSPHRASE), (KeyFileError,)),
        "load_cert(der)": (w.device_cert.public_bytes(serialization.Encoding.DER),
                           certs.load_cert, (InputError,)),
        "verify_device_cert": (
            w.device_cert.public_bytes(serialization.Encoding.DER),
            lambda d: certs.verify_device_cert(certs.load_cert(d), [w.ca_cert], w.now),
            (InputError, CertificateError)),
        "verify_issued_by": (
            w.device_cert.public_bytes(serialization.Encoding.DER),
            lambda d: certs.verify_issued_by(certs.load_cert(d), w.ca_cert, w.now) or True,
            (InputError, CertificateError)),
        "verify_quote(cert)": (
            w.device_cert.public_bytes(serialization.Encoding.DER),
            lambda d: quote.verify_quote(
                quote.sign_quote(w.quote(), w.device_key), certs.load_cert(d), [w.ca_cert],
                w.nonce, w.known_good, w.now),
            (InputError, CertificateError, AttestationError)),
        "load_csr": (certs.make_csr(w.device_key, "gw").public_bytes(serialization.Encoding.PEM),
                     certs.load_csr, (InputError, CertificateError)),
        "unseal": (sealing.seal(w.device_key.public_key(), b"secret", b"info"),
                   lambda d: sealing.unseal(w.device_key, d, b"info"), (IntegrityError,)),
    }


BINARY = ["load_public(der)", "load_public(pem)", "load_private(pem)", "load_private(encrypted)",
          "load_cert(der)", "verify_device_cert", "verify_issued_by", "verify_quote(cert)",
          "load_csr", "unseal"]
_BINARY: dict[str, Any] = {}


def binary_target(world: Any, name: str) -> tuple[bytes, Callable[[bytes], object],
                                                  tuple[type[Error], ...]]:
    if not _BINARY:
        _BINARY.update(_binary_targets(world))
    return _BINARY[name]


@pytest.mark.parametrize("name", BINARY)
def test_binary_valid_input_parses(world: Any, name: str) -> None:
    valid, parse, _ = binary_target(world, name)
    assert parse(valid) is not None


@pytest.mark.parametrize("name", BINARY)
@FUZZ
@given(data=st.data())
def test_binary_arbitrary_and_mutated(world: Any, name: str, data: st.DataObject) -> None:
    valid, parse, errors = binary_target(world, name)
    raw = data.draw(st.binary(max_size=300) | mutated_bytes(valid))
    assert_clean(lambda: parse(raw), errors)
