"""trust.vault: envelope encryption for secrets at rest; a value moved to another place,
under another key or altered does not decrypt."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeward.errors import IntegrityError, KeyFileError
from edgeward.trust import vault


def test_round_trip_and_bindings() -> None:
    master, key = vault.new_key(), vault.new_key()
    wrapped = vault.wrap_key(master, key, "tenant/1")
    assert key not in wrapped and vault.unwrap_key(master, wrapped, "tenant/1") == key
    with pytest.raises(IntegrityError):  # another tenant's row
        vault.unwrap_key(master, wrapped, "tenant/2")
    with pytest.raises(IntegrityError):  # another master key
        vault.unwrap_key(vault.new_key(), wrapped, "tenant/1")
    here = vault.secret_binding(1, "minibar", None, "pw", 3)
    blob = vault.encrypt(key, b"hunter2", here)
    assert b"hunter2" not in blob and vault.decrypt(key, blob, here) == b"hunter2"
    for elsewhere in (vault.secret_binding(2, "minibar", None, "pw", 3),
                      vault.secret_binding(1, "hvac", None, "pw", 3),
                      vault.secret_binding(1, "minibar", "lobby", "pw", 3),
                      vault.secret_binding(1, "minibar", None, "pw2", 3),
                      vault.secret_binding(1, "minibar", None, "pw", 2),
                      vault.recovery_binding(1, "minibar"),
                      vault.credential_binding("tenant/1", 1, "gw", "minibar", "pw")):
        with pytest.raises(IntegrityError, match="does not decrypt"):
            vault.decrypt(key, blob, elsewhere)
    altered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(IntegrityError):
        vault.decrypt(key, altered, here)
    with pytest.raises(IntegrityError, match="unknown format"):
        vault.decrypt(key, b"plaintext", here)


def test_key_check_and_sizes() -> None:
    master = vault.new_key()
    check = vault.key_check(master)
    assert vault.matches(master, check) and not vault.matches(vault.new_key(), check)
    assert master not in check and check != vault.key_check(vault.new_key())
    with pytest.raises(KeyFileError, match="32 bytes"):
        vault.key_check(b"short")
    with pytest.raises(KeyFileError, match="32 bytes"):
        vault.encrypt(b"short", b"x", b"")


def test_a_group_named_like_nothing_is_not_every_gateway() -> None:
    assert vault.secret_binding(1, "a", None, "n", 1) != vault.secret_binding(1, "a", "", "n", 1)
    assert vault.binding("k", "ab", "c") != vault.binding("k", "a", "bc")  # length-prefixed


@given(st.lists(st.one_of(st.none(), st.text(max_size=8), st.integers()), max_size=5),
       st.lists(st.one_of(st.none(), st.text(max_size=8), st.integers()), max_size=5))
def test_bindings_are_unambiguous(a: list[str | int | None], b: list[str | int | None]) -> None:
    same = [None if v is None else str(v) for v in a] == [None if v is None else str(v)
                                                          for v in b]
    assert (vault.binding("k", *a) == vault.binding("k", *b)) == same
