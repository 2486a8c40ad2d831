"""HPKE sealing to a device key, and HUK-derived key wrapping."""

from __future__ import annotations

import os

import pytest

from edgeward.errors import IntegrityError, KeyFileError
from edgeward.trust import keys, sealing, wrap
from edgeward.trust.keys import Algorithm, PrivateKey

INFO = b"edgeward app secret: telemetry"
SECRET = b"the data volume key \x00\x01\x02"


@pytest.fixture(scope="module")
def device() -> PrivateKey:
    return keys.generate()


@pytest.fixture(scope="module")
def box(device: PrivateKey) -> bytes:
    return sealing.seal(device.public_key(), SECRET, INFO)


# ---------------------------------------------------------------------------- HPKE


@pytest.mark.parametrize("plaintext", [b"", b"x", SECRET, os.urandom(70_000)])
def test_seal_unseal_round_trip(device: PrivateKey, plaintext: bytes) -> None:
    sealed = sealing.seal(device.public_key(), plaintext, INFO)
    assert sealed.startswith(sealing.MAGIC)
    assert len(plaintext) < 16 or plaintext not in sealed  # short ones may occur by chance
    assert sealing.unseal(device, sealed, INFO) == plaintext


def test_sealing_is_randomized(device: PrivateKey) -> None:
    a, b = (sealing.seal(device.public_key(), SECRET, INFO) for _ in range(2))
    assert a != b
    assert sealing.unseal(device, a, INFO) == sealing.unseal(device, b, INFO) == SECRET


def test_wrong_key_refused(box: bytes) -> None:
    with pytest.raises(IntegrityError, match="does not open"):
        sealing.unseal(keys.generate(), box, INFO)


@pytest.mark.parametrize("info", [b"", INFO + b"x", INFO[:-1], b"edgeward app secret: other"])
def test_wrong_info_refused(device: PrivateKey, box: bytes, info: bytes) -> None:
    with pytest.raises(IntegrityError, match="not sealed to this key, for this purpose"):
        sealing.unseal(device, box, info)


def test_every_flipped_byte_refused(device: PrivateKey, box: bytes) -> None:
    """One flipped bit anywhere (magic, encapsulated key, ciphertext, tag) is refused."""
    for at in range(len(box)):
        for bit in (0x01, 0x80):
            flipped = bytearray(box)
            flipped[at] ^= bit
            with pytest.raises(IntegrityError):
                sealing.unseal(device, bytes(flipped), INFO)


@pytest.mark.parametrize("keep", [0, 3, len(sealing.MAGIC), len(sealing.MAGIC) + 1, 50, 97, -1])
def test_truncated_box_refused(device: PrivateKey, box: bytes, keep: int) -> None:
    with pytest.raises(IntegrityError):
        sealing.unseal(device, box[:keep], INFO)


def test_appended_bytes_refused(device: PrivateKey, box: bytes) -> None:
    with pytest.raises(IntegrityError):
        sealing.unseal(device, box + b"\x00", INFO)


def test_sealing_needs_p384() -> None:
    ed = keys.generate(Algorithm.ED25519)
    with pytest.raises(KeyFileError, match="P-384 public key"):
        sealing.seal(ed.public_key(), SECRET, INFO)
    with pytest.raises(KeyFileError, match="P-384 private key"):
        sealing.unseal(ed, sealing.MAGIC + bytes(120), INFO)


# ---------------------------------------------------------------------------- key wrapping

HUK = bytes(range(32))
BINDING = b"root:aaaa kernel:bbbb"


def test_kek_is_bound_to_huk_purpose_and_binding() -> None:
    kek = wrap.derive_kek(HUK, b"data-volume", BINDING)
    assert len(kek) == 32
    assert kek == wrap.derive_kek(HUK, b"data-volume", BINDING)
    others = {
        wrap.derive_kek(bytes(32), b"data-volume", BINDING),
        wrap.derive_kek(HUK, b"data-volumf", BINDING),
        wrap.derive_kek(HUK, b"data-volume", BINDING + b"x"),
        wrap.derive_kek(HUK, b"data-volume\x00root:aaaa", b"kernel:bbbb"),
    }
    assert kek not in others


def test_wrap_round_trip_and_refusals() -> None:
    kek = wrap.derive_kek(HUK, b"data-volume", BINDING)
    blob = wrap.wrap(kek, SECRET, BINDING)
    assert blob.startswith(wrap.MAGIC) and SECRET not in blob
    assert wrap.unwrap(kek, blob, BINDING) == SECRET
    with pytest.raises(IntegrityError, match="does not unwrap"):
        wrap.unwrap(wrap.derive_kek(os.urandom(32), b"data-volume", BINDING), blob, BINDING)
    with pytest.raises(IntegrityError, match="does not unwrap"):
        wrap.unwrap(kek, blob, BINDING + b"!")
    for at in range(len(blob)):
        flipped = bytearray(blob)
        flipped[at] ^= 0x04
        with pytest.raises(IntegrityError):
            wrap.unwrap(kek, bytes(flipped), BINDING)
    for keep in (0, len(wrap.MAGIC), len(wrap.MAGIC) + wrap.NONCE + 15):
        with pytest.raises(IntegrityError, match="unknown format"):
            wrap.unwrap(kek, blob[:keep], BINDING)
