"""Tools for the attack tests: what an attacker does to the TUF repository a gateway
updates from, and what the tests check a gateway still is afterwards.

An attacker here is whoever controls the files the fleet server serves
(``DATA/tuf``): a compromised server, or a mirror copying it. The server reads
every metadata file from disk per request and serves a target blob from disk
once a published role names its hash, so rewriting those files is what such an
attacker serves; the server's own in-memory state (and its checks of uploads)
stays the honest publisher's. A compromised server also holds the online
snapshot and timestamp keys (``DATA/tuf/online/*.pem``): :meth:`Served.stolen_keys`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, TargetFile, Timestamp
from tuf.ngclient._internal import trusted_metadata_set

from edgeward.api_client import ApiClient, tls_context
from edgeward.board.base import Board, kernel_partition, rootfs_partition
from edgeward.board.bootenv import other
from edgeward.device.agent import Agent
from edgeward.device.boot.chain import boot, last_boot
from edgeward.device.updates.client import tuf_dir
from edgeward.device.updates.state import work_dir
from edgeward.files import load_private_key
from edgeward.server.services import desired as desired_service
from edgeward.trust import keys, publication
from edgeward.trust.tufkeys import signer
from tests.updates.conftest import World

HASH = publication.HASH


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


# --- the files a compromised server or a mirror serves -------------------------------------


class Served:
    """``DATA/tuf`` of the running server, as whoever controls its disk sees it."""

    def __init__(self, world: World) -> None:
        self.dir = world.server.settings.data / "tuf"
        self.meta = self.dir / "metadata"
        self.blobs = self.dir / "blobs"

    # reading
    def raw(self, name: str) -> bytes:
        return (self.meta / name).read_bytes()

    def load(self, name: str) -> Metadata[Any]:
        return Metadata.from_bytes(self.raw(name))

    def name_of(self, role: str) -> str:
        """The file a client fetches for ``role`` now: timestamp.json, then by version
        as the timestamp and snapshot name them (root: the newest)."""
        if role == Timestamp.type:
            return "timestamp.json"
        if role == Root.type:
            return max(self.meta.glob("*.root.json"), key=lambda p: int(p.name.split(".")[0])
                       ).name
        stamp: Metadata[Timestamp] = self.load("timestamp.json")
        if role == Snapshot.type:
            return f"{stamp.signed.snapshot_meta.version}.snapshot.json"
        snap: Metadata[Snapshot] = self.load(self.name_of(Snapshot.type))
        return f"{snap.signed.meta[f'{role}.json'].version}.{role}.json"

    def current(self, role: str) -> Metadata[Any]:
        return self.load(self.name_of(role))

    def blob_of(self, target_path: str, role: str = "os") -> Path:
        """The blob served for ``target_path`` as ``role`` signs it now."""
        target: TargetFile = self.current(role).signed.targets[target_path]
        return self.blobs / target.hashes[HASH]

    # writing
    def put(self, name: str, data: bytes | Metadata[Any]) -> None:
        body = data.to_bytes() if isinstance(data, Metadata) else data
        (self.meta / name).write_bytes(body)

    def put_blob(self, data: bytes) -> TargetFile:
        """Store bytes as a blob (a compromised server can); their target file info."""
        digest = hashlib.sha384(data).hexdigest()
        (self.blobs / digest).write_bytes(data)
        return TargetFile(len(data), {HASH: digest}, "")

    def stolen_keys(self) -> dict[str, keys.PrivateKey]:
        """The online snapshot and timestamp keys, as an attacker on the server reads them."""
        return {role: load_private_key(self.dir / "online" / f"{role}.pem", None, role)
                for role in publication.ONLINE}

    # an attack's start and end
    def checkpoint(self) -> dict[Path, bytes]:
        return {p: p.read_bytes() for d in (self.meta, self.blobs) for p in d.iterdir()
                if p.is_file()}

    def restore(self, saved: Mapping[Path, bytes]) -> None:
        """Undo every change made since ``saved`` (the attacker is gone)."""
        for d in (self.meta, self.blobs):
            for p in d.iterdir():
                if p not in saved:
                    p.unlink()
        for p, data in saved.items():
            if not p.exists() or p.stat().st_size != len(data) or p.read_bytes() != data:
                p.write_bytes(data)


def resigned(md: Metadata[Any], signers: list[keys.PrivateKey], *, version: int | None = None,
             expires: dt.datetime | None = None) -> Metadata[Any]:
    """A copy of ``md`` with another version and expiry, signed by ``signers`` only."""
    copy: Metadata[Any] = Metadata.from_bytes(md.to_bytes())
    if version is not None:
        copy.signed.version = version
    if expires is not None:
        copy.signed.expires = expires
    copy.signatures.clear()
    for key in signers:
        copy.sign(signer(key), append=True)
    return copy


def sign_timestamp(served: Served, key: keys.PrivateKey, snapshot_name: str, *,
                   version: int | None = None, expires: dt.datetime | None = None) -> None:
    """Serve a timestamp, signed with ``key``, naming the snapshot file ``snapshot_name``
    (with its real length and hash)."""
    data = served.raw(snapshot_name)
    stamp: Metadata[Timestamp] = served.current(Timestamp.type)
    stamp.signed.snapshot_meta = MetaFile(int(snapshot_name.split(".")[0]), len(data),
                                          {HASH: hashlib.sha384(data).hexdigest()})
    served.put("timestamp.json", resigned(
        stamp, [key], version=version or stamp.signed.version + 1,
        expires=expires or utcnow() + dt.timedelta(days=1)))


def sign_snapshot_and_timestamp(served: Served, stolen: Mapping[str, keys.PrivateKey], *,
                                roles: Mapping[str, Metadata[Any]] | None = None,
                                versions: Mapping[str, int] | None = None,
                                snapshot_expires: dt.datetime | None = None) -> None:
    """What a holder of the online keys can publish: ``roles`` (any metadata, served
    under their versions) and a snapshot naming them, or naming other ``versions`` of
    roles, then a timestamp naming that snapshot."""
    snap: Metadata[Snapshot] = served.current(Snapshot.type)
    for role, md in (roles or {}).items():
        served.put(f"{md.signed.version}.{role}.json", md)
        snap.signed.meta[f"{role}.json"] = MetaFile(md.signed.version)
    for role, version in (versions or {}).items():
        snap.signed.meta[f"{role}.json"] = MetaFile(version)
    new = resigned(snap, [stolen[Snapshot.type]], version=snap.signed.version + 1,
                   expires=snapshot_expires or utcnow() + dt.timedelta(days=7))
    name = f"{new.signed.version}.{Snapshot.type}.json"
    served.put(name, new)
    sign_timestamp(served, stolen[Timestamp.type], name)


# --- a compromised server's other answers and the gateway's clock ---------------------------


def lie_about_desired(monkeypatch: pytest.MonkeyPatch, version: str, model: str = "ew-gw1"
                      ) -> None:
    """The server tells every gateway to install ``version`` (a compromised server can say
    anything here; only TUF decides what that version is)."""
    def offer(*_: object) -> dict[str, Any]:
        return {"os": {"version": version, "model": model, "security_version": 0,
                       "channel": "stable", "kernel": f"os/{model}/{version}/kernel.img",
                       "rootfs": f"os/{model}/{version}/rootfs.img", "delta": None},
                "reason": "attacker", "rollout_id": None, "window": "",
                "window_open": True, "auto_update": True, "apps": []}
    monkeypatch.setattr(desired_service, "desired", offer)


def gateway_clock_ahead(monkeypatch: pytest.MonkeyPatch, by: dt.timedelta) -> None:
    """The gateway's TUF client lives ``by`` later (the time an attacker held it back)."""
    class Later(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> Later:  # type: ignore[override]
            return dt.datetime.now(tz) + by  # type: ignore[return-value]

    monkeypatch.setattr(trusted_metadata_set, "datetime",
                        SimpleNamespace(datetime=Later, timezone=dt.timezone))


def server_clock_ahead(world: World, by: dt.timedelta) -> None:
    world.server.state.clock = lambda: dt.datetime.now(dt.UTC) + by


# --- tenants --------------------------------------------------------------------------------


def tenant_client(world: World, tenant: str) -> ApiClient:
    """An admin of operator tenant ``tenant`` (made by the platform admin), logged in."""
    with world.admin() as admin:
        admin.call("POST", "/v1/tenants", {"name": tenant})
        admin.call("POST", "/v1/users", {"name": f"{tenant}-admin", "role": "admin",
                                         "tenant": tenant})
        token = admin.call("POST", "/v1/tokens", {"user": f"{tenant}-admin",
                                                  "tenant": tenant})["token"]
    return ApiClient(world.server.url, tls_context(str(world.ca)), token)


# --- the gateway, before and after ------------------------------------------------------------


def _digest(path: Path) -> str | None:
    if not path.exists():
        return None
    h = hashlib.sha384()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Good:
    """What a gateway runs on its committed slot, and what its other slot holds."""

    slot: str
    version: str
    os_security_version: int
    inactive: tuple[str | None, str | None]  # kernel and rootfs digests of the other slot


def _inactive(board: Board, slot: str) -> tuple[str | None, str | None]:
    spare = other(slot)
    return (_digest(board.partition_path(kernel_partition(spare))),
            _digest(board.partition_path(rootfs_partition(spare))))


def remember(board: Board) -> Good:
    booted = last_boot(board)
    env = board.read_env()
    assert booted is not None and booted["verdict"] == "booted"
    assert env is not None and not env.try_boot and env.active == booted["slot"]
    slot = str(booted["slot"])
    return Good(slot, str(booted["versions"]["rootfs"]), board.fuses().os_security_version,
                _inactive(board, slot))


def assert_unharmed(board: Board, good: Good, *, inactive_untouched: bool = True) -> None:
    """Nothing staged, the other slot as it was, no download left over, and the gateway
    still boots its good slot and release."""
    env = board.read_env()
    assert env is not None
    assert env.active == good.slot and not env.try_boot, env
    assert board.fuses().os_security_version == good.os_security_version
    if inactive_untouched:
        assert _inactive(board, good.slot) == good.inactive, "the inactive slot was written"
    assert not any(work_dir(board).iterdir()), "a refused download was kept"
    report = boot(board)
    assert report.verdict == "booted", report
    booted = last_boot(board)
    assert booted is not None
    assert (booted["slot"], booted["versions"]["rootfs"]) == (good.slot, good.version)


def assert_refused(outcome: Any, *phrases: str | tuple[str, ...]) -> None:
    """Refused, saying each of ``phrases`` (a tuple: one of its phrases)."""
    assert outcome.action == "refused", outcome
    for phrase in phrases:
        options = phrase if isinstance(phrase, tuple) else (phrase,)
        assert any(p in outcome.detail for p in options), (phrase, outcome.detail)


def assert_installs(agent: Agent, version: str) -> None:
    """Once the attack stopped, the release installs and commits (forced: the gateway
    remembers it refused this version)."""
    outcome = agent.check_updates(force=True)
    assert (outcome.action, outcome.version) == ("committed", version), outcome
    booted = last_boot(agent.board)
    assert booted is not None and booted["versions"]["rootfs"] == version


def largest_file(folder: Path) -> int:
    return max((p.stat().st_size for p in folder.rglob("*") if p.is_file()), default=0)


def cached_root_versions(board: Board) -> list[int]:
    return sorted(int(p.name.split(".")[0]) for p in (tuf_dir(board) / "root_history").iterdir())


def sparse_file(path: Path, size: int, head: bytes = b"") -> None:
    """``head`` then zeros up to ``size`` bytes, without using the disk for them."""
    with path.open("wb") as f:
        f.write(head)
        f.truncate(size)
    os.chmod(path, 0o644)
