"""Published OS releases: a mirror of the signed ``os`` TUF role, kept as history.

The repository calls :func:`sync` inside the transaction that accepts new
``os`` metadata, with every release that metadata lists. A release seen for
the first time gets the next publish sequence number (``seq``: what "newest"
means); a promotion re-signs a release with another channel, which is
updated here; a release no longer listed is marked yanked, never deleted
(rollouts and update history name it). The server only says which signed
target to fetch: the gateway trusts TUF, not this table, for bytes and fields.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgeward.errors import InputError
from edgeward.server.db.models import OsRelease
from edgeward.server.services.authz import Action, Principal, authorize
from edgeward.trust.targets import CHANNELS as TARGET_CHANNELS
from edgeward.trust.targets import NAME, VERSION

CHANNELS = TARGET_CHANNELS  # a channel also takes those before it
MODEL = NAME  # the same rules as the signed targets' custom fields


@dataclass(frozen=True)
class TargetRef:
    path: str
    sha384: str
    length: int


@dataclass(frozen=True)
class ReleaseEntry:
    model: str
    version: str
    channel: str
    security_version: int
    kernel: TargetRef
    rootfs: TargetRef
    delta: TargetRef | None = None
    delta_base_version: str | None = None
    delta_base_sha384: str | None = None


def rank(channel: str) -> int:
    """stable 0 < candidate 1 < beta 2 < edge 3 (InputError for anything else)."""
    if channel not in CHANNELS:
        raise InputError(f"channel {channel!r}: use one of {', '.join(CHANNELS)}")
    return CHANNELS.index(channel)


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Natural order of version strings ("1.10" after "1.9"), to order a first sync."""
    return tuple((0, int(part)) if part.isdigit() else (1, part)
                 for part in re.findall(r"\d+|[^\d.+~_-]+", version))


def _check(entry: ReleaseEntry) -> None:
    if not MODEL.match(entry.model) or not VERSION.match(entry.version):
        raise InputError(f"release {entry.model!r} {entry.version!r}: bad model or version")
    rank(entry.channel)
    if entry.delta is not None and not entry.delta_base_version:
        raise InputError(f"release {entry.model} {entry.version}: a delta needs its base")


def _apply(row: OsRelease, entry: ReleaseEntry) -> None:
    row.channel = entry.channel
    row.security_version = entry.security_version
    row.kernel_target, row.kernel_sha384, row.kernel_length = (
        entry.kernel.path, entry.kernel.sha384, entry.kernel.length)
    row.rootfs_target, row.rootfs_sha384, row.rootfs_length = (
        entry.rootfs.path, entry.rootfs.sha384, entry.rootfs.length)
    delta = entry.delta
    row.delta_target = delta.path if delta else None
    row.delta_sha384 = delta.sha384 if delta else None
    row.delta_length = delta.length if delta else None
    row.delta_base_version = entry.delta_base_version if delta else None
    row.delta_base_sha384 = entry.delta_base_sha384 if delta else None


def sync(session: Session, entries: list[ReleaseEntry], now: dt.datetime) -> None:
    """Make ``os_releases`` mirror ``entries``, the full list of the signed ``os`` role.

    New releases are numbered in the order given; several new ones in one call
    (a first sync) are numbered by security version, then natural version order.
    A yanked release that comes back is un-yanked and keeps its number.
    """
    wanted: dict[tuple[str, str], ReleaseEntry] = {}
    for entry in entries:
        _check(entry)
        wanted[(entry.model, entry.version)] = entry
    rows = {(r.model, r.version): r for r in session.execute(select(OsRelease)).scalars()}
    for key, row in rows.items():
        found = wanted.get(key)
        if found is None:
            if row.yanked_at is None:
                row.yanked_at = now
            continue
        _apply(row, found)
        row.yanked_at = None
    seq = session.execute(select(func.max(OsRelease.seq))).scalar_one_or_none() or 0
    fresh = [e for key, e in wanted.items() if key not in rows]
    for entry in sorted(fresh, key=lambda e: (e.security_version, version_key(e.version))):
        seq += 1
        row = OsRelease(model=entry.model, version=entry.version, published_at=now, seq=seq)
        _apply(row, entry)
        session.add(row)
    session.flush()


def find(session: Session, model: str, version: str) -> OsRelease | None:
    return session.execute(select(OsRelease).where(
        OsRelease.model == model, OsRelease.version == version)).scalar_one_or_none()


def for_model(session: Session, model: str) -> list[OsRelease]:
    """Every release of ``model``, yanked ones included, oldest first."""
    return list(session.execute(select(OsRelease).where(OsRelease.model == model)
                                .order_by(OsRelease.seq)).scalars())


def listed(session: Session, principal: Principal, model: str | None = None,
           channel: str | None = None, include_yanked: bool = False) -> list[OsRelease]:
    """Published releases, newest first; ``channel`` also lists the channels before it
    (what a gateway following it may take)."""
    authorize(principal, Action.RELEASE_READ)
    query = select(OsRelease).order_by(OsRelease.seq.desc())
    if model is not None:
        query = query.where(OsRelease.model == model)
    if channel is not None:
        query = query.where(OsRelease.channel.in_(CHANNELS[:rank(channel) + 1]))
    if not include_yanked:
        query = query.where(OsRelease.yanked_at.is_(None))
    return list(session.execute(query).scalars())


def _iso(when: dt.datetime | None) -> str | None:
    if when is None:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).isoformat()


def describe(row: OsRelease) -> dict[str, Any]:
    delta = None
    if row.delta_target is not None:
        delta = {"path": row.delta_target, "sha384": row.delta_sha384,
                 "length": row.delta_length, "base_version": row.delta_base_version,
                 "base_sha384": row.delta_base_sha384}
    return {
        "model": row.model, "version": row.version, "channel": row.channel,
        "security_version": row.security_version, "seq": row.seq,
        "kernel": {"path": row.kernel_target, "sha384": row.kernel_sha384,
                   "length": row.kernel_length},
        "rootfs": {"path": row.rootfs_target, "sha384": row.rootfs_sha384,
                   "length": row.rootfs_length},
        "delta": delta, "published_at": _iso(row.published_at),
        "yanked_at": _iso(row.yanked_at),
    }
