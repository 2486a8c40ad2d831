"""Boot images and their manifests: the BL2 image and the signed kernel bundle.

A **BL2 image** is ``{"root_key": <SPKI DER, base64>, "envelope": <DSSE>}``:
the ROM has only the fused SHA-384 of the root key, so the key travels with
the image, and the ROM trusts it only if it hashes to the fuse. The envelope's
payload names the kernel signing keys BL2 trusts and the model it boots: a
kernel bundle built for another model is refused even if the same key signed it.

A **kernel bundle** is a DSSE envelope whose payload holds the kernel, the
initrd, the command line, and the parameters of the rootfs hash tree (its
root hash among them), all under the kernel key's signature.

Parsers are strict (exact fields, types, ranges) and give one clear line for
anything malformed; verification functions take bytes and fused values and
return the parsed manifest or raise.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from edgeward.errors import KeyFileError, ManifestError, RollbackError, SignatureError
from edgeward.trust.canonical import Fields, canonical, load_object
from edgeward.trust.digest import sha384_hex
from edgeward.trust.envelope import Envelope, open_envelope, parse_envelope, seal_envelope
from edgeward.trust.hashtree import TreeParams
from edgeward.trust.keys import PrivateKey, PublicKey, key_hash, keyid, load_public, public_der

BL2_TYPE = "application/vnd.edgeward.bl2+json"
KERNEL_TYPE = "application/vnd.edgeward.kernel-bundle+json"
MAX_VERSION = 64
MAX_SVN = 64  # the fused counter is a 64-bit thermometer code


@dataclass(frozen=True)
class Bl2Manifest:
    version: str
    security_version: int
    kernel_keys: tuple[PublicKey, ...]
    code: bytes
    model: str
    signer: str = ""
    digest: str = ""  # SHA-384 of the signed payload: what the ROM measures

    def to_payload(self) -> bytes:
        return canonical({
            "type": "bl2",
            "version": self.version,
            "security_version": self.security_version,
            "model": self.model,
            "kernel_keys": [base64.b64encode(public_der(k)).decode() for k in self.kernel_keys],
            "code": base64.b64encode(self.code).decode(),
        })

    @classmethod
    def from_payload(cls, payload: bytes, signer: str) -> Bl2Manifest:
        f = Fields(load_object(payload, "BL2 manifest", ManifestError), "BL2 manifest",
                   ManifestError)
        f.expect({"type", "version", "security_version", "model", "kernel_keys", "code"})
        if f.str_("type") != "bl2":
            f.fail("type must be 'bl2'")
        raw_keys = f.list_("kernel_keys", max_items=8)
        if not raw_keys:
            f.fail("no kernel keys")
        keys = []
        for i, raw in enumerate(raw_keys):
            der = Fields({"key": raw}, f"BL2 manifest.kernel_keys[{i}]", ManifestError).b64_(
                "key", max_len=1024)
            try:
                keys.append(load_public(der))
            except KeyFileError as e:
                raise ManifestError(f"BL2 manifest: kernel_keys[{i}] is not a public key") from e
        return cls(
            version=f.str_("version", MAX_VERSION),
            security_version=f.int_("security_version", 0, MAX_SVN),
            kernel_keys=tuple(keys),
            code=f.b64_("code", max_len=1 << 22),
            model=f.str_("model", 64),
            signer=signer,
            digest=sha384_hex(payload),
        )


def sign_bl2(manifest: Bl2Manifest, root_key: PrivateKey) -> bytes:
    envelope = seal_envelope(BL2_TYPE, manifest.to_payload(), [root_key])
    return canonical({
        "root_key": base64.b64encode(public_der(root_key.public_key())).decode(),
        "envelope": load_object(envelope.to_json(), "envelope"),
    })


def verify_bl2(image: bytes, fused_root_hash: bytes, fused_svn: int) -> Bl2Manifest:
    """What the ROM does: trust the image's root key only if it hashes to the fuse."""
    f = Fields(load_object(image, "BL2 image", ManifestError), "BL2 image", ManifestError)
    f.expect({"root_key", "envelope"})
    if canonical(f.obj) != image:
        f.fail("not in canonical form")
    raw_root = f.b64_("root_key", max_len=1024)
    try:
        root = load_public(raw_root, "BL2 root key")
    except KeyFileError as e:
        raise ManifestError("BL2 image: root_key is not a public key") from e
    if public_der(root) != raw_root:  # one encoding: the fused hash is of these very bytes
        f.fail("root_key is not canonical DER")
    if key_hash(root) != fused_root_hash:
        raise SignatureError("BL2 root key does not match the fused root key hash")
    envelope_obj = f.obj["envelope"]
    if not isinstance(envelope_obj, dict):
        f.fail("envelope must be an object")
    payload, signers = open_envelope(canonical(envelope_obj), BL2_TYPE, {keyid(root): root},
                                     "BL2 image")
    manifest = Bl2Manifest.from_payload(payload, signers[0])
    check_rollback("BL2", manifest.security_version, fused_svn)
    return manifest


@dataclass(frozen=True)
class KernelBundle:
    version: str
    security_version: int
    model: str
    cmdline: str
    kernel: bytes
    initrd: bytes
    rootfs: TreeParams
    rootfs_size: int
    signer: str = ""
    digest: str = ""  # SHA-384 of the signed payload: what BL2 measures

    def to_payload(self) -> bytes:
        r = self.rootfs
        return canonical({
            "type": "kernel-bundle",
            "version": self.version,
            "security_version": self.security_version,
            "model": self.model,
            "cmdline": self.cmdline,
            "kernel": base64.b64encode(self.kernel).decode(),
            "initrd": base64.b64encode(self.initrd).decode(),
            "rootfs": {
                "data_size": r.data_size, "hash_offset": r.hash_offset,
                "block_size": r.block_size, "salt": r.salt.hex(),
                "root_hash": r.root_hash.hex(), "image_size": self.rootfs_size,
                "algorithm": "sha384",
            },
        })

    @classmethod
    def from_payload(cls, payload: bytes, signer: str) -> KernelBundle:
        what = "kernel bundle manifest"
        f = Fields(load_object(payload, what, ManifestError), what, ManifestError)
        f.expect({"type", "version", "security_version", "model", "cmdline", "kernel",
                  "initrd", "rootfs"})
        if f.str_("type") != "kernel-bundle":
            f.fail("type must be 'kernel-bundle'")
        r = f.object_("rootfs", {"data_size", "hash_offset", "block_size", "salt",
                                 "root_hash", "image_size", "algorithm"})
        if r.str_("algorithm") != "sha384":
            r.fail("algorithm must be 'sha384'")
        params = TreeParams(
            data_size=r.int_("data_size", 1, 1 << 40),
            hash_offset=r.int_("hash_offset", 1, 1 << 40),
            block_size=r.int_("block_size", 512, 1 << 16),
            salt=r.hex_("salt", 32),
            root_hash=r.hex_("root_hash", 48),
        )
        params.geometry()  # refuses a size that is not whole blocks
        image_size = r.int_("image_size", 1, 1 << 41)
        if params.hash_offset != params.data_size or image_size != (
                params.hash_offset + params.geometry().tree_size()):
            r.fail("image_size and hash_offset do not fit the data size")
        return cls(
            version=f.str_("version", MAX_VERSION),
            security_version=f.int_("security_version", 0, MAX_SVN),
            model=f.str_("model", 64),
            cmdline=f.str_("cmdline", 1024),
            kernel=f.b64_("kernel"),
            initrd=f.b64_("initrd"),
            rootfs=params,
            rootfs_size=image_size,
            signer=signer,
            digest=sha384_hex(payload),
        )


def sign_kernel_bundle(bundle: KernelBundle, kernel_key: PrivateKey) -> bytes:
    return seal_envelope(KERNEL_TYPE, bundle.to_payload(), [kernel_key]).to_json()


def verify_kernel_bundle(
    image: bytes, trusted: tuple[PublicKey, ...], fused_svn: int
) -> KernelBundle:
    """What BL2 does: the bundle must be signed by a kernel key BL2 embeds."""
    if canonical(load_object(image, "kernel bundle", ManifestError)) != image:
        raise ManifestError("kernel bundle: not in canonical form")
    payload, signers = open_envelope(image, KERNEL_TYPE, {keyid(k): k for k in trusted},
                                     "kernel bundle")
    bundle = KernelBundle.from_payload(payload, signers[0])
    check_rollback("kernel bundle", bundle.security_version, fused_svn)
    return bundle


def peek_bl2(image: bytes) -> Bl2Manifest:
    """Parse a BL2 image WITHOUT verifying it: for builders and displays, never for trust."""
    f = Fields(load_object(image, "BL2 image", ManifestError), "BL2 image", ManifestError)
    envelope_obj = f.expect({"root_key", "envelope"}).obj["envelope"]
    if not isinstance(envelope_obj, dict):
        f.fail("envelope must be an object")
    return Bl2Manifest.from_payload(parse_envelope(canonical(envelope_obj), "BL2").payload, "")


def peek_kernel_bundle(image: bytes) -> KernelBundle:
    """Parse a bundle WITHOUT verifying it: for status displays only, never for trust."""
    envelope: Envelope = parse_envelope(image, "kernel bundle")
    return KernelBundle.from_payload(envelope.payload, "")


def check_rollback(what: str, security_version: int, fused_svn: int) -> None:
    if security_version < fused_svn:
        raise RollbackError(
            f"{what} security version {security_version} is below the fused counter {fused_svn}"
        )
