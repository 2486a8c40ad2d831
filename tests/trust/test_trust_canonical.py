"""Canonical JSON out, strict JSON in, typed field access, and the gaps found in them."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from edgeward.errors import (
    AttestationError,
    EnvelopeError,
    Error,
    InputError,
    ManifestError,
    StateError,
)
from edgeward.trust import envelope as dsse
from edgeward.trust import manifest, quote
from edgeward.trust.canonical import Fields, canonical, from_hex, load_object


def one_line(error: Error) -> str:
    message = str(error)
    assert message.strip()
    assert message.splitlines() == [message], f"not one line: {message!r}"
    return message


# ---------------------------------------------------------------------------- canonical


def test_canonical_sorts_keys_and_drops_whitespace() -> None:
    assert canonical({"b": [1, {"d": None, "c": True}], "a": "x"}) == (
        b'{"a":"x","b":[1,{"c":true,"d":null}]}')


def test_canonical_keeps_utf8_raw() -> None:
    assert canonical({"k": "é€😀"}) == '{"k":"é€😀"}'.encode()


def test_canonical_refuses_nan() -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        canonical({"x": float("nan")})


def test_load_then_canonical_is_identity_on_canonical_bytes() -> None:
    data = canonical({"z": [1, 2.5, "ü"], "a": {"b": False}})
    assert canonical(load_object(data, "doc")) == data


# ---------------------------------------------------------------------------- load_object


@pytest.mark.parametrize(("data", "fragment"), [
    (b'{"a":1,"a":2}', "duplicate key 'a'"),
    (b'{"x":{"a":1,"a":1}}', "duplicate key 'a'"),
    (b'{"a":NaN}', "NaN is not allowed"),
    (b'{"a":Infinity}', "Infinity is not allowed"),
    (b'{"a":-Infinity}', "-Infinity is not allowed"),
    (b'{"a":"\xff"}', "can't decode byte 0xff"),
    (b"\xef\xbb\xbf{}", "BOM"),
    (b"", "Expecting value"),
    (b"{", "Expecting property name"),
    (b'{"a":1} {}', "Extra data"),
    (b'{"a":' + b"9" * 5000 + b"}", "integer"),
])
def test_load_object_refuses_malformed(data: bytes, fragment: str) -> None:
    with pytest.raises(ManifestError) as info:
        load_object(data, "the manifest", ManifestError)
    message = one_line(info.value)
    assert message.startswith("the manifest: not valid JSON")
    assert fragment in message


@pytest.mark.parametrize(("data", "kind"), [
    (b"[]", "list"), (b'"text"', "str"), (b"12", "int"), (b"null", "NoneType"),
    (b"true", "bool"), (b"1.5", "float"),
])
def test_load_object_refuses_a_top_level_that_is_not_an_object(data: bytes, kind: str) -> None:
    with pytest.raises(InputError, match=f"^doc: expected a JSON object, got {kind}$"):
        load_object(data, "doc")


def test_load_object_size_limit() -> None:
    data = canonical({"pad": "x" * 100})
    assert load_object(data, "doc", limit=len(data)) == {"pad": "x" * 100}
    with pytest.raises(StateError, match=f"^doc: {len(data)} bytes is over the "
                                         f"{len(data) - 1}-byte limit$"):
        load_object(data, "doc", StateError, limit=len(data) - 1)


def test_load_object_deep_nesting_is_an_input_error() -> None:
    with pytest.raises(InputError, match="not valid JSON"):
        load_object(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "doc")


def test_load_object_uses_the_given_error_class() -> None:
    with pytest.raises(EnvelopeError) as info:
        load_object(b"nope", "env", EnvelopeError)
    assert type(info.value) is EnvelopeError
    assert info.value.exit_code == 3


# ---------------------------------------------------------------------------- hex, Fields


def test_from_hex() -> None:
    assert from_hex("") == b""
    assert from_hex("00ff7a") == b"\x00\xff\x7a"
    for bad in ("ABCD", "abc", "0x00", "00 ff", "zz", "\u0660\u0660"):  # Arabic-Indic zeros
        with pytest.raises(ValueError):
            from_hex(bad)


def fields(obj: dict[str, Any]) -> Fields:
    return Fields(obj, "thing", ManifestError)


def test_fields_expect_names_missing_then_unknown() -> None:
    with pytest.raises(ManifestError, match=r"^thing: missing field\(s\) a, c$"):
        fields({"b": 1, "z": 2}).expect({"a", "b", "c"})
    with pytest.raises(ManifestError, match=r"^thing: unknown field\(s\) y, z$"):
        fields({"a": 1, "z": 2, "y": 3}).expect({"a"})


def test_fields_types_are_exact() -> None:
    f = fields({"n": True, "b": 1, "s": 5, "l": {}, "o": [], "f": 1.0, "big": 2**63})
    for getter, key, label in ((f.int_, "n", "an integer"), (f.bool_, "b", "true or false"),
                               (f.str_, "s", "a string"), (f.list_, "l", "a list"),
                               (f.int_, "f", "an integer")):
        with pytest.raises(ManifestError, match=f"^thing: field '{key}' must be {label}$"):
            getter(key)
    with pytest.raises(ManifestError, match="must be an object"):
        f.object_("o", set())
    with pytest.raises(ManifestError, match="between 0 and"):
        f.int_("big")


def test_fields_bounds() -> None:
    f = fields({"s": "abcd", "i": 7, "l": [1, 2, 3]})
    assert f.str_("s", 4) == "abcd"
    with pytest.raises(ManifestError, match="longer than 3 characters"):
        f.str_("s", 3)
    with pytest.raises(ManifestError, match="between 8 and 9"):
        f.int_("i", 8, 9)
    with pytest.raises(ManifestError, match="more than 2 items"):
        f.list_("l", 2)


def test_fields_hex_and_base64() -> None:
    f = fields({"h": "00" * 4, "H": "AA" * 4, "b": base64.b64encode(b"abc").decode(),
                "bad": "not base64!", "pad": "YWJj\n"})
    assert f.hex_("h", 4) == bytes(4)
    with pytest.raises(ManifestError, match="must decode to 5 bytes, not 4"):
        f.hex_("h", 5)
    with pytest.raises(ManifestError, match="'H' is not valid lowercase hex"):
        f.hex_("H", 4)
    assert f.b64_("b") == b"abc"
    for key in ("bad", "pad"):
        with pytest.raises(ManifestError, match=f"'{key}' is not valid base64"):
            f.b64_(key)


def test_fields_base64_has_one_encoding_per_value() -> None:
    """'QR==' decodes to b'A' as 'QQ==' does: a second spelling of signed bytes is refused."""
    assert base64.b64decode("QR==", validate=True) == b"A"
    with pytest.raises(ManifestError, match="not valid base64"):
        fields({"b": "QR=="}).b64_("b")


# ---------------------------------------------------------------------------- bugs found

SURROGATE = b'"\\ud800"'  # JSON text for a lone UTF-16 surrogate: valid JSON, not Unicode


def test_load_object_refuses_overflowing_numbers() -> None:
    try:
        value = load_object(b'{"a":1e400}', "doc")
    except InputError:
        return
    raise AssertionError(f"accepted {value!r}")


def test_load_object_refuses_lone_surrogates() -> None:
    try:
        value = load_object(b'{"a":' + SURROGATE + b"}", "doc")
    except InputError:
        return
    raise AssertionError(f"accepted {value!r}")


def test_verify_bl2_overflowing_number_is_a_manifest_error() -> None:
    with pytest.raises(ManifestError):
        manifest.verify_bl2(b'{"envelope":1e400,"root_key":"AA=="}', bytes(48), 0)


def test_verify_bl2_lone_surrogate_is_a_manifest_error() -> None:
    with pytest.raises(ManifestError):
        manifest.verify_bl2(b'{"envelope":' + SURROGATE + b',"root_key":"AA=="}', bytes(48), 0)


def test_verify_bl2_bugs_need_no_key() -> None:
    """The same images with an ordinary value are refused cleanly: only the value matters."""
    for value in (b"1e300", b'"x"'):
        with pytest.raises(ManifestError) as info:
            manifest.verify_bl2(b'{"envelope":' + value + b',"root_key":"AA=="}', bytes(48), 0)
        one_line(info.value)


UNKNOWN_KEY_CASES = [
    ("parse_envelope", lambda: dsse.parse_envelope(
        b'{"payload":"","payloadType":"t","signatures":[],"x\\nOK: verified":1}')),
    ("Quote.from_payload", lambda: quote.Quote.from_payload(
        b'{"events":[],"nonce":"","register":"","serial":"","slot":"a","type":"quote",'
        b'"\\r\\nforged":0}')),
    ("KnownGood.from_json", lambda: quote.KnownGood.from_json(
        b'{"components":{},"type":"known-good","\\u2028":1}')),
]


@pytest.mark.parametrize(("name", "call"), UNKNOWN_KEY_CASES, ids=[c[0] for c in UNKNOWN_KEY_CASES])
def test_unknown_field_names_do_not_break_the_message(name: str, call: Any) -> None:
    with pytest.raises((EnvelopeError, AttestationError, InputError)) as info:
        call()
    one_line(info.value)


def test_unknown_field_names_are_reported() -> None:
    with pytest.raises(EnvelopeError, match=r"unknown field\(s\) extra$"):
        dsse.parse_envelope(b'{"extra":1,"payload":"","payloadType":"t","signatures":[]}')


def test_json_dumps_escapes_are_what_the_bug_tests_send() -> None:
    """Guard for the tests above: the bytes really are valid JSON carrying those values."""
    assert json.loads(SURROGATE) == "\ud800"
    assert json.loads(b"1e400") == float("inf")
