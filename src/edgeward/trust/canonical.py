"""Canonical JSON out, strict JSON in.

Signed payloads are canonical JSON (sorted keys, no insignificant whitespace,
UTF-8), so the bytes a signer saw are the bytes a verifier checks. The strict
reader refuses what a lenient one would quietly accept: duplicate keys, NaN and
infinities, non-UTF-8, documents over a size limit, and a top level that is
not an object.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any, NoReturn

from edgeward.errors import Error, InputError

MAX_DOCUMENT = 16 << 20
_HEX = re.compile(r"(?:[0-9a-f]{2})*")


def canonical(obj: Any) -> bytes:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not allowed")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def load_object(
    data: bytes, what: str, error: type[Error] = InputError, limit: int = MAX_DOCUMENT
) -> dict[str, Any]:
    """Parse ``data`` as one JSON object, strictly; ``what`` names it in errors."""
    if len(data) > limit:
        raise error(f"{what}: {len(data)} bytes is over the {limit}-byte limit")
    try:
        text = data.decode("utf-8")
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant,
                         parse_float=_finite)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise error(f"{what}: not valid JSON ({e})") from e
    if not isinstance(obj, dict):
        raise error(f"{what}: expected a JSON object, got {type(obj).__name__}")
    try:  # whatever was read can be written back: no lone surrogates (\ud800) slip through
        canonical(obj)
    except (UnicodeEncodeError, ValueError, RecursionError) as e:
        raise error(f"{what}: holds text that is not valid Unicode") from e
    return obj


def from_hex(text: str) -> bytes:
    """Lowercase hex without separators, or ValueError."""
    if not _HEX.fullmatch(text):
        raise ValueError("not lowercase hex")
    return bytes.fromhex(text)


class Fields:
    """Typed, exhaustive access to one parsed JSON object.

    ``Fields(obj, "kernel bundle", ManifestError).expect({"a", "b"})`` refuses
    a missing or an unknown key; ``str_``/``int_``/... refuse a wrong type.
    """

    def __init__(self, obj: dict[str, Any], what: str, error: type[Error]) -> None:
        self.obj = obj
        self.what = what
        self.error = error

    def fail(self, message: str) -> NoReturn:
        raise self.error(f"{self.what}: {message}")

    def expect(self, keys: set[str]) -> Fields:
        missing = keys - self.obj.keys()
        unknown = self.obj.keys() - keys
        if missing:
            self.fail(f"missing field(s) {', '.join(sorted(missing))}")
        if unknown:
            self.fail(f"unknown field(s) {', '.join(k[:64] for k in sorted(unknown))}")
        return self

    def _get(self, key: str, kind: type, label: str) -> Any:
        value = self.obj.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.fail(f"field {key!r} must be {label}")
        return value

    def str_(self, key: str, max_len: int = 4096) -> str:
        value: str = self._get(key, str, "a string")
        if len(value) > max_len:
            self.fail(f"field {key!r} is longer than {max_len} characters")
        return value

    def int_(self, key: str, low: int = 0, high: int = 2**63 - 1) -> int:
        value: int = self._get(key, int, "an integer")
        if not low <= value <= high:
            self.fail(f"field {key!r} must be between {low} and {high}")
        return value

    def bool_(self, key: str) -> bool:
        value: bool = self._get(key, bool, "true or false")
        return value

    def list_(self, key: str, max_items: int = 1024) -> list[Any]:
        value: list[Any] = self._get(key, list, "a list")
        if len(value) > max_items:
            self.fail(f"field {key!r} has more than {max_items} items")
        return value

    def object_(self, key: str, keys: set[str]) -> Fields:
        value = self._get(key, dict, "an object")
        return Fields(value, f"{self.what}.{key}", self.error).expect(keys)

    def hex_(self, key: str, size: int) -> bytes:
        return self.decoded(key, from_hex, size, "lowercase hex")

    def b64_(self, key: str, size: int | None = None, max_len: int = 8 << 20) -> bytes:
        import base64
        import binascii

        def decode(s: str) -> bytes:
            try:
                raw = base64.b64decode(s, validate=True)
            except binascii.Error as e:
                raise ValueError(str(e)) from e
            if base64.b64encode(raw).decode() != s:  # one encoding per value: no malleability
                raise ValueError("non-canonical base64")
            return raw

        return self.decoded(key, decode, size, "base64", max_len)

    def decoded(
        self,
        key: str,
        decode: Callable[[str], bytes],
        size: int | None,
        label: str,
        max_len: int = 8 << 20,
    ) -> bytes:
        text = self.str_(key, max_len=max_len)
        try:
            raw = decode(text)
        except ValueError:
            self.fail(f"field {key!r} is not valid {label}")
        if size is not None and len(raw) != size:
            self.fail(f"field {key!r} must decode to {size} bytes, not {len(raw)}")
        return raw
