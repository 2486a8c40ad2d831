"""BL2 images and kernel bundles: what the ROM and BL2 check before handing over."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import pytest

from edgeward.errors import EnvelopeError, ManifestError, RollbackError, SignatureError
from edgeward.trust import keys, manifest
from edgeward.trust.canonical import canonical
from edgeward.trust.digest import sha384_hex
from edgeward.trust.envelope import seal_envelope
from edgeward.trust.hashtree import BLOCK_SIZE, Geometry
from edgeward.trust.keys import Algorithm


def test_bl2_round_trip(world: Any) -> None:
    image = manifest.sign_bl2(world.bl2, world.root_key)
    got = manifest.verify_bl2(image, world.fused_root_hash, 1)
    assert (got.version, got.security_version, got.code) == ("1.0.0", 1, world.bl2.code)
    assert [keys.keyid(k) for k in got.kernel_keys] == [keys.keyid(world.kernel_public)]
    assert got.signer == keys.keyid(world.root_key.public_key())
    assert canonical(json.loads(image)) == image


def test_bl2_root_key_must_match_the_fuse(world: Any) -> None:
    image = manifest.sign_bl2(world.bl2, world.root_key)
    for fused in (bytes(48), keys.key_hash(world.stranger.public_key()),
                  world.fused_root_hash[:-1] + bytes([world.fused_root_hash[-1] ^ 1])):
        with pytest.raises(SignatureError, match="does not match the fused root key hash"):
            manifest.verify_bl2(image, fused, 0)


def test_bl2_signed_by_another_key_with_the_right_root_key_refused(world: Any) -> None:
    """The image names the fused root key, but the envelope is signed by someone else."""
    real = json.loads(manifest.sign_bl2(world.bl2, world.root_key))
    forged = json.loads(manifest.sign_bl2(world.bl2, world.stranger))
    image = canonical({"root_key": real["root_key"], "envelope": forged["envelope"]})
    with pytest.raises(SignatureError, match="not signed by any trusted key"):
        manifest.verify_bl2(image, world.fused_root_hash, 0)


def test_bl2_rollback_refused(world: Any) -> None:
    image = manifest.sign_bl2(world.bl2, world.root_key)
    with pytest.raises(RollbackError, match="^BL2 security version 1 is below the fused "
                                            "counter 2$"):
        manifest.verify_bl2(image, world.fused_root_hash, 2)


def test_bl2_not_canonical_refused(world: Any) -> None:
    image = manifest.sign_bl2(world.bl2, world.root_key)
    for variant in (image + b"\n", b" " + image, json.dumps(json.loads(image)).encode()):
        with pytest.raises(ManifestError):
            manifest.verify_bl2(variant, world.fused_root_hash, 0)


def test_bl2_of_the_wrong_type_refused(world: Any) -> None:
    envelope = seal_envelope(manifest.KERNEL_TYPE, world.bl2.to_payload(), [world.root_key])
    image = canonical({
        "root_key": base64.b64encode(keys.public_der(world.root_key.public_key())).decode(),
        "envelope": json.loads(envelope.to_json())})
    with pytest.raises(EnvelopeError, match="payload type"):
        manifest.verify_bl2(image, world.fused_root_hash, 0)


@pytest.mark.parametrize(("change", "fragment"), [
    ({"type": "kernel-bundle"}, "type must be 'bl2'"),
    ({"kernel_keys": []}, "no kernel keys"),
    ({"kernel_keys": ["AAAA"]}, "kernel_keys[0] is not a public key"),
    ({"kernel_keys": [5]}, "must be a string"),
    ({"security_version": 65}, "between 0 and 64"),
    ({"security_version": -1}, "between 0 and 64"),
    ({"version": "v" * 65}, "longer than 64"),
])
def test_bl2_manifest_refusals(world: Any, change: dict[str, Any], fragment: str) -> None:
    doc = {**json.loads(world.bl2.to_payload()), **change}
    with pytest.raises(ManifestError) as info:
        manifest.Bl2Manifest.from_payload(canonical(doc), "s")
    assert fragment in str(info.value)


@pytest.mark.parametrize("algorithm", [Algorithm.ECDSA_P384, Algorithm.ED25519])
def test_kernel_bundle_round_trip(world: Any, algorithm: Algorithm) -> None:
    key = keys.generate(algorithm)
    image = manifest.sign_kernel_bundle(world.bundle, key)
    got = manifest.verify_kernel_bundle(image, (world.kernel_public, key.public_key()), 2)
    digest = sha384_hex(world.bundle.to_payload())
    assert got == dataclasses.replace(world.bundle, signer=keys.keyid(key.public_key()),
                                      digest=digest)
    assert manifest.peek_kernel_bundle(image) == dataclasses.replace(world.bundle, digest=digest)


def test_kernel_bundle_by_an_untrusted_key_refused(world: Any) -> None:
    image = manifest.sign_kernel_bundle(world.bundle, world.stranger)
    with pytest.raises(SignatureError, match="not signed by any trusted key"):
        manifest.verify_kernel_bundle(image, (world.kernel_public,), 0)
    # peek reads it anyway: it is for display only
    assert manifest.peek_kernel_bundle(image).version == world.bundle.version


def test_kernel_bundle_rollback_refused(world: Any) -> None:
    image = manifest.sign_kernel_bundle(world.bundle, world.kernel_key)
    manifest.verify_kernel_bundle(image, (world.kernel_public,), 2)
    with pytest.raises(RollbackError, match="kernel bundle security version 2 is below"):
        manifest.verify_kernel_bundle(image, (world.kernel_public,), 3)


def test_kernel_bundle_altered_payload_refused(world: Any) -> None:
    doc = json.loads(manifest.sign_kernel_bundle(world.bundle, world.kernel_key))
    payload = json.loads(base64.b64decode(doc["payload"]))
    payload["cmdline"] += " init=/bin/sh"
    doc["payload"] = base64.b64encode(canonical(payload)).decode()
    with pytest.raises(SignatureError, match="does not verify"):
        manifest.verify_kernel_bundle(canonical(doc), (world.kernel_public,), 0)


def test_kernel_bundle_not_in_canonical_form_is_refused(world: Any) -> None:
    image = manifest.sign_kernel_bundle(world.bundle, world.kernel_key)
    pretty = json.dumps(json.loads(image), indent=1).encode()
    with pytest.raises(ManifestError, match="canonical form"):
        manifest.verify_kernel_bundle(pretty, (world.kernel_public,), 0)


def test_measured_digest_is_of_the_signed_content_not_the_container(world: Any) -> None:
    """Two signatures over one payload (ECDSA is randomized) measure the same."""
    a = manifest.sign_kernel_bundle(world.bundle, world.kernel_key)
    b = manifest.sign_kernel_bundle(world.bundle, world.kernel_key)
    assert a != b
    got = {manifest.verify_kernel_bundle(x, (world.kernel_public,), 0).digest for x in (a, b)}
    assert got == {sha384_hex(world.bundle.to_payload())}


def test_bl2_root_key_must_be_canonical_der(world: Any) -> None:
    from cryptography.hazmat.primitives import serialization

    image = json.loads(manifest.sign_bl2(world.bl2, world.root_key))
    public = world.root_key.public_key()
    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    for encoding in (keys.public_pem(public), der + b"\x00"):
        image["root_key"] = base64.b64encode(encoding).decode()
        with pytest.raises(ManifestError):
            manifest.verify_bl2(canonical(image), keys.key_hash(public), 0)


def rootfs_doc(world: Any, **rootfs: Any) -> bytes:
    doc = json.loads(world.bundle.to_payload())
    doc["rootfs"].update(rootfs)
    return canonical(doc)


def test_kernel_bundle_rootfs_geometry_checked(world: Any) -> None:
    size = world.bundle.rootfs.data_size
    tree = Geometry(size, BLOCK_SIZE).tree_size()
    cases = [
        ({"image_size": size + tree + BLOCK_SIZE}, "image_size and hash_offset"),
        ({"hash_offset": size + BLOCK_SIZE}, "image_size and hash_offset"),
        ({"data_size": size + 1}, "not a positive multiple"),
        ({"block_size": 3000}, "not a power of two"),
        ({"block_size": 256}, "between 512 and 65536"),
        ({"algorithm": "sha256"}, "algorithm must be 'sha384'"),
        ({"salt": "00" * 31}, "must decode to 32 bytes"),
        ({"root_hash": "AA" * 48}, "not valid lowercase hex"),
    ]
    for change, fragment in cases:
        with pytest.raises(ManifestError) as info:
            manifest.KernelBundle.from_payload(rootfs_doc(world, **change), "s")
        assert fragment in str(info.value), change


def test_check_rollback() -> None:
    manifest.check_rollback("x", 5, 5)
    manifest.check_rollback("x", 6, 5)
    with pytest.raises(RollbackError, match="^x security version 4 is below the fused counter "
                                            "5$"):
        manifest.check_rollback("x", 4, 5)
