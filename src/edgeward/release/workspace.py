"""A publisher's offline workspace: the TUF keys it signs with, and the current root.

::

    DIR/workspace.json        root threshold, root key names
    DIR/keys/root-<n>.key     root keys (a threshold of them signs each root)
    DIR/keys/targets.key      top-level targets (delegates os/* and apps/<tenant>/*)
    DIR/keys/os.key           the OS vendor's role
    DIR/keys/apps-<t>.key     a tenant's role (or only its .pub, if the tenant holds it)
    DIR/root.json             the newest root: ship it in every rootfs

Private keys are 0600 in a 0700 directory, encrypted when a passphrase is given.
Old keys are kept as ``*.key.retired-<n>`` after a rotation, never deleted here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgeward.errors import InputError, KeyFileError
from edgeward.files import (
    load_private_key,
    private_dir,
    read_file,
    save_private_key,
    write_atomic,
)
from edgeward.trust import keys
from edgeward.trust.canonical import Fields, canonical, load_object


@dataclass(frozen=True)
class Workspace:
    root: Path
    threshold: int
    root_keys: tuple[str, ...]
    passphrase: bytes | None = None

    @property
    def root_json(self) -> Path:
        return self.root / "root.json"

    def key_path(self, name: str) -> Path:
        return self.root / "keys" / f"{name}.key"

    def key(self, name: str) -> keys.PrivateKey:
        path = self.key_path(name)
        if not path.exists():
            raise KeyFileError(f"no {name} key in {self.root / 'keys'}")
        return load_private_key(path, self.passphrase, f"{name} key")

    def public(self, name: str) -> keys.PublicKey:
        pub = self.root / "keys" / f"{name}.pub"
        if pub.exists():
            return keys.load_public(read_file(pub, f"{name} public key"), f"{name} public key")
        return self.key(name).public_key()

    def roots(self) -> list[keys.PrivateKey]:
        return [self.key(name) for name in self.root_keys]

    def new_key(self, name: str) -> keys.PrivateKey:
        """Make ``name``'s key, retiring any key it replaces."""
        path = self.key_path(name)
        if path.exists():
            n = 1
            while path.with_name(f"{path.name}.retired-{n}").exists():
                n += 1
            os.replace(path, path.with_name(f"{path.name}.retired-{n}"))
        key = keys.generate()
        save_private_key(path, key, self.passphrase)
        write_atomic(self.root / "keys" / f"{name}.pub", keys.public_pem(key.public_key()))
        return key

    def save(self, threshold: int | None = None, root_keys: tuple[str, ...] | None = None
             ) -> Workspace:
        ws = Workspace(self.root, threshold or self.threshold, root_keys or self.root_keys,
                       self.passphrase)
        write_atomic(self.root / "workspace.json", canonical({
            "threshold": ws.threshold, "root_keys": list(ws.root_keys)}) + b"\n")
        return ws


def create(root: Path, n_root: int, threshold: int, passphrase: bytes | None) -> Workspace:
    if root.exists() and any(root.iterdir()):
        raise InputError(f"{root} exists and is not empty: a release workspace is made once")
    if not 1 <= threshold <= n_root:
        raise InputError(f"--threshold {threshold} must be between 1 and --root-keys {n_root}")
    private_dir(root)
    private_dir(root / "keys")
    ws = Workspace(root, threshold, tuple(f"root-{i}" for i in range(1, n_root + 1)),
                   passphrase)
    return ws.save()


def open_workspace(root: Path, passphrase: bytes | None) -> Workspace:
    what = f"release workspace {root}"
    f = Fields(load_object(read_file(root / "workspace.json", what), what, InputError), what,
               InputError).expect({"threshold", "root_keys"})
    names = f.obj.get("root_keys")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        f.fail("root_keys must list key names")
    return Workspace(root, f.int_("threshold", 1, 16), tuple(names), passphrase)
