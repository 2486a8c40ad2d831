"""Key files: PKCS#8 PEM with and without a passphrase, public keys, supported algorithms."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from edgeward.errors import KeyFileError
from edgeward.trust import keys
from edgeward.trust.keys import Algorithm
from edgeward.trust.signing import sign, verify_with

PASSPHRASE = b"correct horse battery staple"
ALGORITHMS = [Algorithm.ECDSA_P384, Algorithm.ED25519]


def assert_no_secret(error: KeyFileError, pem: bytes, passphrase: bytes | None) -> None:
    message = str(error)
    assert message.strip() and message.splitlines() == [message]
    assert "-----" not in message and "PRIVATE KEY" not in message
    body = b"".join(pem.splitlines()[1:-1]).decode()
    for at in range(0, len(body) - 16, 16):
        assert body[at:at + 16] not in message
    if passphrase:
        assert passphrase.decode() not in message
        for word in passphrase.decode().split():
            assert word not in message


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_generate_and_algorithm_of(algorithm: Algorithm) -> None:
    key = keys.generate(algorithm)
    assert keys.algorithm_of(key) is algorithm
    assert keys.algorithm_of(key.public_key()) is algorithm
    assert keys.algorithm_of(keys.generate()) is Algorithm.ECDSA_P384  # the default


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_unencrypted_pem_round_trip(algorithm: Algorithm) -> None:
    key = keys.generate(algorithm)
    pem = keys.private_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = keys.load_private(pem)
    assert keys.public_der(loaded.public_key()) == keys.public_der(key.public_key())


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_encrypted_pem_loads_with_its_passphrase(algorithm: Algorithm) -> None:
    key = keys.generate(algorithm)
    pem = keys.private_pem(key, PASSPHRASE)
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    loaded = keys.load_private(pem, PASSPHRASE)
    assert keys.keyid(loaded.public_key()) == keys.keyid(key.public_key())
    # the loaded key really is the private half: it signs what the original verifies
    verify_with(key.public_key(), b"m", sign(loaded, b"m"), "k")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("wrong", [b"Correct horse battery staple", b"x", PASSPHRASE + b" "])
def test_wrong_passphrase_refused(algorithm: Algorithm, wrong: bytes) -> None:
    pem = keys.private_pem(keys.generate(algorithm), PASSPHRASE)
    with pytest.raises(KeyFileError) as info:
        keys.load_private(pem, wrong, what="root key")
    assert str(info.value) == "root key: wrong passphrase or not a valid private key"
    assert_no_secret(info.value, pem, PASSPHRASE)
    assert wrong.decode() not in str(info.value)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("missing", [None, b""])
def test_missing_passphrase_refused(algorithm: Algorithm, missing: bytes | None) -> None:
    pem = keys.private_pem(keys.generate(algorithm), PASSPHRASE)
    with pytest.raises(KeyFileError) as info:
        keys.load_private(pem, missing, what="root key")
    assert str(info.value) == "root key is encrypted: a passphrase is needed"
    assert_no_secret(info.value, pem, PASSPHRASE)


def test_passphrase_for_an_unencrypted_key_refused() -> None:
    pem = keys.private_pem(keys.generate())
    with pytest.raises(KeyFileError, match="not encrypted, but a passphrase was given") as info:
        keys.load_private(pem, PASSPHRASE)
    assert_no_secret(info.value, pem, PASSPHRASE)


def test_empty_passphrase_means_unencrypted() -> None:
    pem = keys.private_pem(keys.generate(), b"")
    assert b"ENCRYPTED" not in pem
    keys.load_private(pem, b"")


@pytest.mark.parametrize("data", [b"", b"garbage", b"-----BEGIN PRIVATE KEY-----\nAAAA\n"
                                  b"-----END PRIVATE KEY-----\n", bytes(range(256))])
def test_garbage_private_key_refused(data: bytes) -> None:
    with pytest.raises(KeyFileError, match="not a valid private key"):
        keys.load_private(data)


def test_truncated_encrypted_pem_refused() -> None:
    pem = keys.private_pem(keys.generate(), PASSPHRASE)
    lines = pem.splitlines(keepends=True)
    broken = b"".join(lines[:2] + lines[-1:])
    with pytest.raises(KeyFileError) as info:
        keys.load_private(broken, PASSPHRASE)
    assert_no_secret(info.value, pem, PASSPHRASE)


def test_other_curves_and_rsa_refused() -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    p256_pem = p256.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    with pytest.raises(KeyFileError, match="unsupported curve secp256r1"):
        keys.load_private(p256_pem)
    with pytest.raises(KeyFileError, match="unsupported curve"):
        keys.load_public(keys.public_pem(p256.public_key()))
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_pem = rsa_key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    with pytest.raises(KeyFileError, match="unsupported key type"):
        keys.load_private(rsa_pem)
    with pytest.raises(KeyFileError, match="unsupported key type"):
        keys.load_public(rsa_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_public_key_pem_and_der(algorithm: Algorithm) -> None:
    public = keys.generate(algorithm).public_key()
    der = keys.public_der(public)
    for data in (der, keys.public_pem(public), b"\n  " + keys.public_pem(public)):
        assert keys.public_der(keys.load_public(data)) == der


@pytest.mark.parametrize("data", [b"", b"-----BEGIN PUBLIC KEY-----\n", b"\x30\x00", b"x" * 90])
def test_garbage_public_key_refused(data: bytes) -> None:
    with pytest.raises(KeyFileError, match="^kernel key: not a valid public key$"):
        keys.load_public(data, "kernel key")
