"""The fleet server's TUF repository (python-tuf's Metadata API and Repository base).

``DATA/tuf/`` holds::

    online/{snapshot,timestamp}.pem   the online keys (0600), made on first start;
                                      online/next-<role>.pem while a rotation is pending
    metadata/<v>.<role>.json          every version of root, targets, os, apps-<tenant>,
                                      snapshot (consistent snapshots); timestamp.json
    blobs/<sha384>                    uploaded target files, by content

Root, targets and delegated roles arrive signed offline and are checked
(:mod:`edgeward.trust.publication`) before anything is written; then the
server signs a new snapshot and a new timestamp with its online keys. Files
are replaced atomically and ``timestamp.json`` is written last, so a client
never sees a timestamp naming a snapshot that is not there; a crash leaves
the previous repository state whole. The current state is read back at start
from timestamp -> snapshot -> roles, as a client would.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import re
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, BinaryIO

from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Targets, Timestamp
from tuf.repository import Repository as TufRepository

from edgeward.errors import Conflict, InputError, NotFound, StateError
from edgeward.files import load_private_key, private_dir, save_private_key, write_atomic
from edgeward.trust import keys, publication
from edgeward.trust.quote import KnownGood
from edgeward.trust.targets import HEX384, OS_ROLE
from edgeward.trust.tufkeys import same_key, signer, tuf_key

SNAPSHOT_LIFETIME = dt.timedelta(days=7)
TIMESTAMP_LIFETIME = dt.timedelta(days=1)
REFRESH_MARGIN = 0.5  # re-sign the timestamp once half of its life is gone
MAX_BLOB = 8 << 30
_METADATA_NAME = re.compile(r"^(?:[1-9][0-9]{0,9}\.)?[a-z0-9][a-z0-9._-]{0,70}\.json$")


class ServerRepository(TufRepository):
    """One repository, one writer at a time (a lock), readers never see a half state."""

    def __init__(self, root: Path, clock: Callable[[], dt.datetime]) -> None:
        self.dir = private_dir(root)
        self.meta_dir = private_dir(root / "metadata")
        self.blob_dir = private_dir(root / "blobs")
        self.online_dir = private_dir(root / "online")
        self.clock = clock
        self.lock = threading.RLock()
        self._current: dict[str, Metadata[Any]] = {}
        self._online = {role: self._online_key(role) for role in publication.ONLINE}
        self._load()

    # --- online keys -------------------------------------------------------------
    def _online_key(self, role: str) -> keys.PrivateKey:
        path = self.online_dir / f"{role}.pem"
        if not path.exists():
            save_private_key(path, keys.generate())
        return load_private_key(path, None, f"online {role} key")

    def online_public(self) -> dict[str, dict[str, Any]]:
        """The online keys (and any pending rotation), as TUF key dicts by role."""
        out: dict[str, dict[str, Any]] = {}
        for role in publication.ONLINE:
            out[role] = tuf_key(self._online[role].public_key()).to_dict() | {
                "keyid": keys.keyid(self._online[role].public_key())}
            pending = self.online_dir / f"next-{role}.pem"
            if pending.exists():
                key = load_private_key(pending, None, f"next {role} key").public_key()
                out[f"next-{role}"] = tuf_key(key).to_dict() | {"keyid": keys.keyid(key)}
        return out

    def rotate_online(self, role: str) -> dict[str, Any]:
        """Make (or return) the next key for an online role; it takes over once a root
        naming it is published."""
        if role not in publication.ONLINE:
            raise InputError(f"{role} is not an online role (snapshot, timestamp)")
        with self.lock:
            path = self.online_dir / f"next-{role}.pem"
            if not path.exists():
                save_private_key(path, keys.generate())
            key = load_private_key(path, None, f"next {role} key").public_key()
            return tuf_key(key).to_dict() | {"keyid": keys.keyid(key)}

    # --- state -----------------------------------------------------------------
    def _path(self, role: str, version: int | None) -> Path:
        return self.meta_dir / (f"{role}.json" if version is None else f"{version}.{role}.json")

    def _load(self) -> None:
        roots = sorted((int(p.name.split(".")[0]), p) for p in self.meta_dir.glob("*.root.json"))
        stamp = self.meta_dir / "timestamp.json"
        if not roots or not stamp.exists():
            return
        self._current[Root.type] = Metadata.from_bytes(roots[-1][1].read_bytes())
        self._current[Timestamp.type] = Metadata.from_bytes(stamp.read_bytes())
        version = self._current[Timestamp.type].signed.snapshot_meta.version
        snap: Metadata[Snapshot] = Metadata.from_bytes(
            self._path(Snapshot.type, version).read_bytes())
        self._current[Snapshot.type] = snap
        for name, meta in snap.signed.meta.items():
            role = name.removesuffix(".json")
            self._current[role] = Metadata.from_bytes(
                self._path(role, meta.version).read_bytes())
        self._adopt_rotated_keys(self._current[Root.type].signed)  # if a crash came between

    @property
    def initialised(self) -> bool:
        return Timestamp.type in self._current

    def current(self, role: str) -> Metadata[Any]:
        found = self._current.get(role)
        if found is None:
            raise NotFound(f"no {role} metadata is published")
        return found

    def current_bytes(self, role: str) -> bytes:
        md = self.current(role)
        name = "timestamp.json" if role == Timestamp.type else f"{md.signed.version}.{role}.json"
        return (self.meta_dir / name).read_bytes()

    def roles(self) -> list[str]:
        return sorted(self._current)

    def known_good(self) -> KnownGood:
        """What the published OS releases say attestation may accept."""
        if OS_ROLE not in self._current:
            return KnownGood()
        return KnownGood({k: frozenset(v) for k, v in publication.measurements(
            self._current[OS_ROLE].signed.targets).items()})

    # --- tuf.repository.Repository --------------------------------------------
    def open(self, role: str) -> Metadata[Any]:
        if role in self._current:
            return Metadata.from_bytes(self._current[role].to_bytes())  # a private copy
        if role == Snapshot.type:
            return Metadata(Snapshot(expires=self.clock()))
        if role == Timestamp.type:
            return Metadata(Timestamp(expires=self.clock()))
        raise NotFound(f"no {role} metadata is published")

    def close(self, role: str, md: Metadata[Any]) -> None:
        if role not in publication.ONLINE:
            raise StateError(f"the server cannot sign {role}: that key is offline")
        md.signed.version += 1
        lifetime = SNAPSHOT_LIFETIME if role == Snapshot.type else TIMESTAMP_LIFETIME
        md.signed.expires = (self.clock() + lifetime).replace(microsecond=0)
        md.signatures.clear()
        md.sign(signer(self._online[role]))
        self._write(role, md)

    @property
    def targets_infos(self) -> dict[str, MetaFile]:
        return {f"{role}.json": MetaFile(md.signed.version) for role, md in
                self._current.items() if isinstance(md.signed, Targets)}

    @property
    def snapshot_info(self) -> MetaFile:
        data = self.current_bytes(Snapshot.type)
        return MetaFile(self._current[Snapshot.type].signed.version, len(data),
                        {publication.HASH: hashlib.sha384(data).hexdigest()})

    def _write(self, role: str, md: Metadata[Any]) -> None:
        data = md.to_bytes()
        if role == Timestamp.type:
            write_atomic(self._path(role, None), data, mode=0o644)
        else:
            write_atomic(self._path(role, md.signed.version), data, mode=0o644)
        self._current[role] = md

    # --- publishing --------------------------------------------------------------
    def blob_length(self, digest: str) -> int | None:
        try:
            return (self.blob_dir / digest).stat().st_size if HEX384.match(digest) else None
        except FileNotFoundError:
            return None

    def initialise(self, root: bytes, targets: bytes, delegated: dict[str, bytes]) -> None:
        """Publish the first root, top-level targets and delegated roles."""
        with self.lock:
            if self.initialised:
                raise Conflict("the repository is already initialised; rotate keys instead")
            now = self.clock()
            root_md = publication.check_root(None, root, now)
            self._check_online_keys(root_md.signed)
            targets_md = publication.check_targets(root_md.signed, None, targets, now)
            checked = {role: publication.check_delegated(targets_md.signed, role, None, data,
                                                         now, self.blob_length)
                       for role, data in delegated.items()}
            self._write(Root.type, root_md)
            self._write(Targets.type, targets_md)
            for role, md in checked.items():
                self._write(role, md)
            self.do_snapshot(force=True)
            self.do_timestamp(force=True)

    def publish(self, role: str, data: bytes) -> int:
        """Check and publish a new version of an offline role; a new snapshot and
        timestamp follow. Returns the published version."""
        with self.lock:
            if not self.initialised:
                raise StateError("the repository is not initialised: run "
                                 "'edgeward release init' first")
            now = self.clock()
            md: Metadata[Any]
            if role == Root.type:
                md = publication.check_root(self.current(Root.type), data, now)
                self._check_online_keys(md.signed)
                self._write(Root.type, md)
                self._adopt_rotated_keys(md.signed)
                self.do_snapshot(force=True)  # re-signed with the keys this root names
            elif role == Targets.type:
                md = publication.check_targets(self.current(Root.type).signed,
                                               self._current.get(Targets.type), data, now)
                self._write(Targets.type, md)
                self.do_snapshot(force=True)
            elif role in publication.ONLINE:
                raise InputError(f"{role} is signed by the server, not uploaded")
            else:
                md = publication.check_delegated(self.current(Targets.type).signed, role,
                                                 self._current.get(role), data, now,
                                                 self.blob_length)
                self._write(role, md)
                self.do_snapshot()
            self.do_timestamp(force=True)
            return int(md.signed.version)

    def _check_online_keys(self, root: Root) -> None:
        for role in publication.ONLINE:
            held = [tuf_key(self._online[role].public_key())]
            pending = self.online_dir / f"next-{role}.pem"
            if pending.exists():
                held.append(tuf_key(load_private_key(pending, None, "key").public_key()))
            named = root.get_delegated_role(role)
            if named.threshold != 1 or len(named.keyids) != 1:
                raise InputError(f"the {role} role must be one online key held by the server")
            key = root.get_key(named.keyids[0])
            if not any(same_key(key, h) for h in held):
                raise InputError(f"the root names a {role} key this server does not hold")

    def _adopt_rotated_keys(self, root: Root) -> None:
        for role in publication.ONLINE:
            pending = self.online_dir / f"next-{role}.pem"
            if not pending.exists():
                continue
            key = load_private_key(pending, None, "key")
            if same_key(root.get_key(root.get_delegated_role(role).keyids[0]),
                        tuf_key(key.public_key())):
                os.replace(pending, self.online_dir / f"{role}.pem")
                self._online[role] = key

    def refresh_timestamp(self) -> bool:
        """Re-sign the timestamp (and snapshot) before they expire; True if it did."""
        with self.lock:
            if not self.initialised:
                return False
            now = self.clock()
            changed = False
            for role, lifetime in ((Snapshot.type, SNAPSHOT_LIFETIME),
                                   (Timestamp.type, TIMESTAMP_LIFETIME)):
                left = self._current[role].signed.expires - now
                if left < lifetime * REFRESH_MARGIN or changed:
                    if role == Snapshot.type:
                        self.do_snapshot(force=True)
                    else:
                        self.do_timestamp(force=True)
                    changed = True
            return changed

    # --- files served -------------------------------------------------------------
    def metadata_file(self, name: str) -> Path:
        if not _METADATA_NAME.match(name):
            raise NotFound(f"no metadata file {name}")
        path = self.meta_dir / name
        if not path.is_file():
            raise NotFound(f"no metadata file {name}")
        return path

    def target_file(self, path: str) -> Path:
        """The blob behind a consistent-snapshot target URL ``dir/<sha384>.<name>``,
        if a published role names it with that hash."""
        directory, _, base = path.rpartition("/")
        digest, dot, name = base.partition(".")
        if not dot or not HEX384.match(digest):
            raise NotFound(f"no target {path}")
        target_path = f"{directory}/{name}" if directory else name
        for md in self._current.values():
            if isinstance(md.signed, Targets):
                found = md.signed.targets.get(target_path)
                if found is not None and found.hashes.get(publication.HASH) == digest:
                    return self.blob_dir / digest
        raise NotFound(f"no target {path}")

    async def store_blob(self, digest: str, length: int, chunks: AsyncIterator[bytes]) -> bool:
        """Stream an upload in; keep it only if it is ``length`` bytes hashing to
        ``digest``. Returns False if it was already stored."""
        if not HEX384.match(digest):
            raise InputError("a blob is named by its lowercase hex SHA-384")
        if not 0 < length <= MAX_BLOB:
            raise InputError(f"a blob is 1 byte to {MAX_BLOB} bytes")
        final = self.blob_dir / digest
        if final.exists():
            async for _ in chunks:
                pass
            return False
        fd, name = tempfile.mkstemp(prefix=f".upload-{digest[:16]}-", dir=self.blob_dir)
        os.close(fd)  # one temporary per upload: two uploads of one blob never share it
        tmp = Path(name)
        hasher, size, pending = hashlib.sha384(), 0, bytearray()

        def flush(out: BinaryIO, block: bytes) -> None:
            hasher.update(block)
            out.write(block)

        try:
            with tmp.open("wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > length:
                        raise InputError(f"upload is longer than its {length} bytes")
                    pending += chunk
                    if len(pending) >= 1 << 20:  # hash and write off the event loop
                        await asyncio.to_thread(flush, out, bytes(pending))
                        pending.clear()
                await asyncio.to_thread(flush, out, bytes(pending))
                out.flush()
                await asyncio.to_thread(os.fsync, out.fileno())
            if size != length:
                raise InputError(f"upload ended after {size} of {length} bytes")
            if hasher.hexdigest() != digest:
                raise InputError("upload does not hash to the SHA-384 it was named by")
            os.chmod(tmp, 0o600)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return True
