"""The redundant boot environment: encoding, checksums, and picking the newest good copy."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeward.board import bootenv
from edgeward.board.bootenv import BootEnv, decode, newest
from edgeward.errors import Error, StateError
from edgeward.trust.digest import sha384_hex

FUZZ = settings(max_examples=250, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

ENVS = [
    BootEnv(),
    BootEnv(active="b", try_boot=True, boot_count=2, boot_limit=3, last_fallback="", seq=7),
    BootEnv(active="a", try_boot=False, boot_count=1000, boot_limit=100,
            last_fallback="slot b: kernel bundle refused (signature) — fell back", seq=2**63 - 1),
]


def body(env: BootEnv) -> dict[str, Any]:
    return json.loads(env.encode())


def rewrite(doc: dict[str, Any], checksum: bool = True) -> bytes:
    """Serialize ``doc``; with ``checksum``, recompute it so only the content is wrong."""
    doc = dict(doc)
    if checksum:
        doc.pop("checksum", None)
        doc["checksum"] = sha384_hex(json.dumps(doc, sort_keys=True, separators=(",", ":"),
                                                ensure_ascii=False).encode())
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def one_line(error: Error) -> None:
    message = str(error)
    assert message.strip() and message.splitlines() == [message], repr(message)


# ---------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("env", ENVS)
def test_encode_decode_round_trip(env: BootEnv) -> None:
    data = env.encode()
    assert decode(data) == env
    assert decode(data).encode() == data


def test_encoding_is_canonical_and_checksummed() -> None:
    env = ENVS[1]
    doc = body(env)
    checksum = doc.pop("checksum")
    assert checksum == sha384_hex(json.dumps(doc, sort_keys=True,
                                             separators=(",", ":")).encode())
    assert env.encode() == json.dumps({**doc, "checksum": checksum}, sort_keys=True,
                                      separators=(",", ":")).encode()


def test_with_seq_and_other() -> None:
    env = ENVS[1]
    assert env.with_seq(8) == BootEnv("b", True, 2, 3, "", 8)
    assert bootenv.other("a") == "b" and bootenv.other("b") == "a"


# ---------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("field", ["active", "try_boot", "boot_count", "boot_limit",
                                   "last_fallback", "seq"])
def test_checksum_mismatch_refused(field: str) -> None:
    """Any field changed without recomputing the checksum is refused."""
    doc = body(ENVS[1])
    doc[field] = {"active": "a", "try_boot": False, "boot_count": 3, "boot_limit": 4,
                  "last_fallback": "x", "seq": 8}[field]
    with pytest.raises(StateError, match="^boot environment: checksum does not match$"):
        decode(rewrite(doc, checksum=False))


def test_wrong_checksum_refused() -> None:
    doc = body(ENVS[0])
    for checksum in ("00" * 48, doc["checksum"].upper(), doc["checksum"][:-1], ""):
        with pytest.raises(StateError, match="checksum does not match"):
            decode(rewrite({**doc, "checksum": checksum}, checksum=False))


@pytest.mark.parametrize(("change", "fragment"), [
    ({"active": "c"}, "active slot 'c' is not a or b"),
    ({"active": ""}, "active slot '' is not a or b"),
    ({"active": "ab"}, "longer than 1"),
    ({"try_boot": 1}, "'try_boot' must be true or false"),
    ({"boot_count": -1}, "between 0 and 1000"),
    ({"boot_count": 1001}, "between 0 and 1000"),
    ({"boot_count": True}, "must be an integer"),
    ({"boot_limit": 0}, "between 1 and 100"),
    ({"seq": -1}, "'seq' must be between 0"),
    ({"seq": 2**63}, "'seq' must be between 0"),
    ({"seq": 1.0}, "must be an integer"),
    ({"last_fallback": "x" * 257}, "longer than 256"),
    ({"extra": 1}, "unknown field(s) extra"),
])
def test_malformed_fields_refused_even_with_a_good_checksum(change: dict[str, Any],
                                                           fragment: str) -> None:
    data = rewrite({**body(ENVS[1]), **change})
    with pytest.raises(StateError) as info:
        decode(data)
    assert fragment in str(info.value)
    one_line(info.value)


def test_missing_field_refused() -> None:
    doc = body(ENVS[0])
    del doc["seq"]
    with pytest.raises(StateError, match=r"missing field\(s\) seq"):
        decode(rewrite(doc))


@pytest.mark.parametrize("data", [b"", b"\xff" * 64, b"[]", b"{}", b"null", bytes(4096)])
def test_garbage_refused(data: bytes) -> None:
    with pytest.raises(StateError):
        decode(data)


# ---------------------------------------------------------------------------- newest


def test_newest_picks_the_highest_valid_seq() -> None:
    old, new = BootEnv(active="a", seq=4), BootEnv(active="b", seq=5)
    assert newest([old.encode(), new.encode()]) == (new, 1)
    assert newest([new.encode(), old.encode()]) == (new, 0)


def test_newest_skips_corrupt_copies() -> None:
    old, new = BootEnv(active="a", seq=4), BootEnv(active="b", seq=5)
    data = bytearray(new.encode())
    data[len(data) // 2] ^= 0x01
    assert newest([old.encode(), bytes(data)]) == (old, 0)
    assert newest([bytes(data), old.encode()]) == (old, 1)
    torn = new.encode()[:40]  # a write interrupted half way
    assert newest([torn, old.encode()]) == (old, 1)
    # a copy with a higher seq but a wrong checksum never wins
    forged = rewrite({**body(new), "seq": 99}, checksum=False)
    assert newest([old.encode(), forged]) == (old, 0)


def test_newest_with_no_valid_copy() -> None:
    assert newest([]) is None
    assert newest([None, None]) is None
    assert newest([b"", b"\x00" * 100]) is None
    assert newest([None, BootEnv(seq=1).encode()]) == (BootEnv(seq=1), 1)


def test_newest_tie_keeps_the_first() -> None:
    a, b = BootEnv(active="a", seq=3), BootEnv(active="b", seq=3)
    assert newest([a.encode(), b.encode()]) == (a, 0)


@settings(max_examples=200, deadline=None)
@given(seqs=st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=4),
       corrupt=st.lists(st.booleans(), min_size=4, max_size=4),
       flip_at=st.integers(0, 10_000))
def test_newest_property(seqs: list[int], corrupt: list[bool], flip_at: int) -> None:
    copies: list[bytes | None] = []
    valid: list[tuple[int, int]] = []
    for index, seq in enumerate(seqs):
        data = bytearray(BootEnv(active="ab"[index % 2], seq=seq).encode())
        if corrupt[index]:
            data[flip_at % len(data)] ^= 0x20
            copies.append(bytes(data))
        else:
            copies.append(bytes(data))
            valid.append((seq, index))
    got = newest(copies)
    if not valid:
        # a flipped bit may still decode only if it left a valid document, which the
        # checksum forbids; so nothing is valid
        assert got is None
        return
    best_seq = max(seq for seq, _ in valid)
    assert got is not None
    env, index = got
    assert env.seq == best_seq
    assert index == min(i for seq, i in valid if seq == best_seq)


# ---------------------------------------------------------------------------- fuzzing

KEYS = st.sampled_from(["active", "try_boot", "boot_count", "boot_limit", "last_fallback",
                        "seq", "checksum"]) | st.text(
    st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=8)
SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(-2, 1001)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
           | st.sampled_from(["a", "b", ""]))
JSON = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4)
                    | st.dictionaries(KEYS, kids, max_size=4), max_leaves=15)


def decode_cleanly(data: bytes) -> BootEnv | None:
    try:
        env = decode(data)
    except StateError as e:
        one_line(e)
        return None
    assert isinstance(env, BootEnv) and env.active in bootenv.SLOTS
    return env


@FUZZ
@given(data=st.binary(max_size=400))
def test_decode_arbitrary_bytes(data: bytes) -> None:
    decode_cleanly(data)


@FUZZ
@given(value=JSON)
def test_decode_arbitrary_json(value: object) -> None:
    assert decode_cleanly(json.dumps(value).encode()) is None


@FUZZ
@given(values=st.fixed_dictionaries({k: SCALARS for k in body(BootEnv())}),
       fix_checksum=st.booleans())
def test_decode_right_keys_arbitrary_values(values: dict[str, Any], fix_checksum: bool) -> None:
    decode_cleanly(rewrite(values, checksum=fix_checksum))


@FUZZ
@given(data=st.data())
def test_decode_mutated_copy(data: st.DataObject) -> None:
    doc = copy.deepcopy(body(ENVS[2]))
    op = data.draw(st.sampled_from(["drop", "add", "retype", "flip", "truncate"]))
    key = data.draw(st.sampled_from(sorted(doc)))
    if op == "drop":
        del doc[key]
    elif op == "add":
        doc[data.draw(KEYS)] = data.draw(JSON)
    elif op == "retype":
        doc[key] = data.draw(SCALARS.filter(lambda v, old=doc[key]: type(v) is not type(old)))
    raw = rewrite(doc, checksum=data.draw(st.booleans()))
    if op == "flip":
        at = data.draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([raw[at] ^ data.draw(st.integers(1, 255))]) + raw[at + 1:]
    elif op == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    env = decode_cleanly(raw)
    if op in ("flip", "truncate"):
        assert env is None  # the checksum catches every single-byte change and every cut


# ---------------------------------------------------------------------------- bug found


def test_lone_surrogate_copy_is_skipped() -> None:
    good = BootEnv(active="a", seq=1)
    doc = body(BootEnv(active="b", seq=2))
    doc["last_fallback"] = "\ud800"
    bad = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()  # \ud800 escaped
    assert b"\\ud800" in bad
    assert newest([good.encode(), bad]) == (good, 0)
