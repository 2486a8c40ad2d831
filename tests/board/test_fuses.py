"""The OTP fuse bank: bits only ever go 0 -> 1, write-once fields, the monotonic counter."""

from __future__ import annotations

import hashlib
import itertools
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.board import fuses
from edgeward.errors import FuseError, StateError

ROOT = hashlib.sha384(b"root key").digest()
HUK = bytes(range(1, 33))
ONCE = {"root_key_hash": ROOT, "huk": HUK, "debug_disable": b"\x01"}


def provisioned() -> bytes:
    bank = fuses.blank()
    for name, value in ONCE.items():
        bank = fuses.burn_once(bank, name, value)
    return fuses.advance_security_version(bank, 3)


def test_layout_fits_the_bank() -> None:
    spans = sorted(fuses.FIELDS.values())
    for (a, size), (b, _) in itertools.pairwise(spans):
        assert a + size == b
    assert spans[-1][0] + spans[-1][1] == fuses.LOCK_OFFSET == fuses.SIZE - 1


def test_blank_bank() -> None:
    state = fuses.decode(fuses.blank())
    assert state.root_key_hash == bytes(48)
    assert (state.huk_burnt, state.security_version, state.debug_disable) == (False, 0, False)
    assert state.locked == frozenset() and not state.provisioned


def test_provisioned_bank() -> None:
    bank = provisioned()
    state = fuses.decode(bank)
    assert state.root_key_hash == ROOT
    assert state.huk_burnt and state.debug_disable and state.provisioned
    assert state.security_version == 3
    assert state.locked == {"root_key_hash", "huk", "debug_disable"}
    assert fuses.huk(bank) == HUK
    assert "huk" not in state.to_dict() and HUK.hex() not in str(state.to_dict())
    assert state.to_dict()["write_locked"] == ["debug_disable", "huk", "root_key_hash"]


def test_public_hash_covers_public_fields_only() -> None:
    a = fuses.decode(provisioned())
    other_huk = fuses.blank()
    for name, value in {**ONCE, "huk": os.urandom(32)}.items():
        other_huk = fuses.burn_once(other_huk, name, value)
    other_huk = fuses.advance_security_version(other_huk, 3)
    assert fuses.decode(other_huk).public_hash() == a.public_hash()
    higher = fuses.decode(fuses.advance_security_version(provisioned(), 4))
    assert higher.public_hash() != a.public_hash()


# ---------------------------------------------------------------------------- program


def test_program_sets_more_bits() -> None:
    bank = fuses.program(fuses.blank(), 10, b"\x0f\x00")
    assert bank[10:12] == b"\x0f\x00"
    bank = fuses.program(bank, 10, b"\x1f\x80")
    assert bank[10:12] == b"\x1f\x80"
    assert bank[:10] == bytes(10) and bank[12:] == bytes(fuses.SIZE - 12)


@pytest.mark.parametrize(("old", "new"), [(0x01, 0x00), (0xff, 0xfe), (0x80, 0x7f),
                                          (0x0f, 0xf0)])
def test_program_refuses_one_to_zero(old: int, new: int) -> None:
    bank = fuses.program(fuses.blank(), 20, bytes([old]))
    with pytest.raises(FuseError, match="cannot go from 1 back to 0"):
        fuses.program(bank, 20, bytes([new]))
    assert fuses.program(bank, 20, bytes([old | new]))[20] == old | new


def test_program_same_value_again_is_a_no_op() -> None:
    bank = fuses.program(fuses.blank(), 0, b"\xaa\x55")
    assert fuses.program(bank, 0, b"\xaa\x55") == bank


@pytest.mark.parametrize(("offset", "length"), [(-1, 1), (fuses.SIZE, 1), (fuses.SIZE - 1, 2),
                                                (0, fuses.SIZE + 1)])
def test_program_outside_the_bank_refused(offset: int, length: int) -> None:
    with pytest.raises(FuseError, match="outside the bank"):
        fuses.program(fuses.blank(), offset, b"\x01" * length)


@settings(max_examples=300, deadline=None)
@given(writes=st.lists(st.tuples(st.integers(0, fuses.SIZE - 1), st.binary(min_size=1,
                                                                           max_size=8)),
                       max_size=12))
def test_bits_never_go_from_one_to_zero(writes: list[tuple[int, bytes]]) -> None:
    """Whatever is programmed, in any order, no bit that was 1 is ever 0 again."""
    bank = fuses.blank()
    for offset, value in writes:
        value = value[:fuses.SIZE - offset]
        before = bank
        try:
            bank = fuses.program(bank, offset, value)
        except FuseError:
            assert bank == before
            old = before[offset:offset + len(value)]
            assert any(o & ~v for o, v in zip(old, value, strict=True))
            continue
        assert len(bank) == fuses.SIZE
        for b, a in zip(before, bank, strict=True):
            assert b & a == b  # every 1 stayed 1
        for i, v in enumerate(value):
            assert bank[offset + i] == before[offset + i] | v


# ---------------------------------------------------------------------------- write-once


@pytest.mark.parametrize("name", list(ONCE))
def test_second_burn_of_a_write_once_field_refused(name: str) -> None:
    bank = fuses.burn_once(fuses.blank(), name, ONCE[name])
    assert name in fuses.decode(bank).locked
    for again in (ONCE[name], bytes(len(ONCE[name])), b"\xff" * len(ONCE[name])):
        with pytest.raises(FuseError, match=f"^{name} is already burnt; fuses are write-once$"):
            fuses.burn_once(bank, name, again)


def test_burning_one_field_leaves_the_others_open() -> None:
    bank = fuses.burn_once(fuses.blank(), "huk", HUK)
    state = fuses.decode(bank)
    assert state.locked == {"huk"} and state.huk_burnt and state.root_key_hash == bytes(48)
    bank = fuses.burn_once(bank, "root_key_hash", ROOT)
    assert fuses.decode(bank).locked == {"huk", "root_key_hash"}
    assert fuses.huk(bank) == HUK


@pytest.mark.parametrize(("name", "size"), [("root_key_hash", 48), ("huk", 32),
                                            ("debug_disable", 1)])
def test_burn_wrong_length_refused(name: str, size: int) -> None:
    for length in (0, size - 1, size + 1):
        with pytest.raises(FuseError, match=f"{name} takes {size} bytes, got {length}"):
            fuses.burn_once(fuses.blank(), name, b"\x01" * length)


def test_burn_over_stray_ones_that_would_need_clearing_refused() -> None:
    """A field with bits already set (but not locked) can only take a superset of them."""
    bank = fuses.program(fuses.blank(), 0, b"\xff")
    with pytest.raises(FuseError, match="1 back to 0"):
        fuses.burn_once(bank, "root_key_hash", b"\x00" * 48)
    assert not fuses.decode(bank).locked


def test_fuse_error_is_a_state_error() -> None:
    assert issubclass(FuseError, StateError) and FuseError("x").exit_code == 6


# ---------------------------------------------------------------------------- security version


def test_security_version_goes_up_one_way() -> None:
    bank = fuses.blank()
    for version in (0, 1, 2, 2, 5, 40, 64):
        bank = fuses.advance_security_version(bank, version)
        assert fuses.decode(bank).security_version == version
    offset, size = fuses.FIELDS["security_version"]
    assert bank[offset:offset + size] == b"\xff" * 8


@pytest.mark.parametrize(("current", "lower"), [(1, 0), (5, 4), (64, 0), (3, -1)])
def test_security_version_cannot_go_down(current: int, lower: int) -> None:
    bank = fuses.advance_security_version(fuses.blank(), current)
    with pytest.raises(FuseError, match=f"cannot go down from {current} to {lower}"):
        fuses.advance_security_version(bank, lower)
    assert fuses.decode(bank).security_version == current


@pytest.mark.parametrize("version", [65, 100, 2**70])
def test_security_version_capped_at_64(version: int) -> None:
    with pytest.raises(FuseError, match=f"security version {version} is beyond the 64 fuses"):
        fuses.advance_security_version(fuses.blank(), version)
    full = fuses.advance_security_version(fuses.blank(), 64)
    with pytest.raises(FuseError, match="beyond the 64 fuses"):
        fuses.advance_security_version(full, version)


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.integers(-2, 70), max_size=15))
def test_security_version_is_monotonic(steps: list[int]) -> None:
    bank = fuses.blank()
    current = 0
    for version in steps:
        try:
            bank = fuses.advance_security_version(bank, version)
        except FuseError:
            assert version < current or version > 64
            continue
        assert current <= version <= 64
        current = version
        assert fuses.decode(bank).security_version == current


@pytest.mark.parametrize("counter", [0b10, 0b101, 0b110, 1 << 63, (1 << 64) - 2,
                                     0b1011, 0xff00])
def test_non_thermometer_counter_refused(counter: int) -> None:
    offset, size = fuses.FIELDS["security_version"]
    bank = fuses.program(fuses.blank(), offset, counter.to_bytes(size, "little"))
    with pytest.raises(FuseError, match="not a thermometer code"):
        fuses.decode(bank)
    with pytest.raises(FuseError, match="not a thermometer code"):
        fuses.advance_security_version(bank, 64)


@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 63, 64])
def test_thermometer_counts(count: int) -> None:
    offset, size = fuses.FIELDS["security_version"]
    bank = fuses.program(fuses.blank(), offset, ((1 << count) - 1).to_bytes(size, "little"))
    assert fuses.decode(bank).security_version == count


@pytest.mark.parametrize("size", [0, 90, 97, 99, 196])
def test_decode_wrong_size_refused(size: int) -> None:
    with pytest.raises(FuseError, match=f"fuse bank is {size} bytes, expected 98"):
        fuses.decode(bytes(size))
