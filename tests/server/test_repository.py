"""The server's TUF repository: what it publishes, what it refuses, timestamp upkeep."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata, TargetFile

from edgeward.errors import (
    Conflict,
    InputError,
    ManifestError,
    RollbackError,
    SignatureError,
    StateError,
)
from edgeward.files import write_secret
from edgeward.release import roles
from edgeward.release.publish import online_key
from edgeward.server.services.repository import ServerRepository
from edgeward.trust import keys
from edgeward.trust.targets import OsTarget, kernel_path, rootfs_path

T0 = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


class Keys:
    def __init__(self) -> None:
        self.roots = [keys.generate() for _ in range(3)]
        self.targets, self.os = keys.generate(), keys.generate()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def offline() -> Keys:
    return Keys()


@pytest.fixture
def repo(tmp_path: Path, clock: Clock, offline: Keys) -> ServerRepository:
    repo = ServerRepository(tmp_path / "tuf", clock)
    online = {r: online_key(repo.online_public()[r]) for r in ("snapshot", "timestamp")}
    root, targets, os_md = roles.initial(offline.roots, 2, offline.targets, offline.os,
                                         online, T0)
    repo.initialise(root.to_bytes(), targets.to_bytes(), {"os": os_md.to_bytes()})
    return repo


def _blob(repo: ServerRepository, data: bytes) -> TargetFile:
    digest = hashlib.sha384(data).hexdigest()
    (repo.blob_dir / digest).write_bytes(data)
    return TargetFile.from_data("x", data, ["sha384"])


def _release(repo: ServerRepository, offline: Keys, version: str = "1.1.0", svn: int = 2,
             channel: str = "stable") -> Metadata[TargetFile]:
    current = repo.current("os")
    files = {}
    for kind, path in (("kernel", kernel_path("ew-gw1", version)),
                       ("rootfs", rootfs_path("ew-gw1", version))):
        target = _blob(repo, f"{kind} {version}".encode())
        target.path = path
        files[path] = (target, OsTarget(kind, "ew-gw1", version, channel, svn))
    return roles.add_targets(current, files, offline.os, T0)


def test_initialised_repository_has_consistent_snapshot_files(repo: ServerRepository
                                                              ) -> None:
    names = sorted(p.name for p in repo.meta_dir.iterdir())
    assert "1.root.json" in names and "1.targets.json" in names and "1.os.json" in names
    assert "timestamp.json" in names
    snap = repo.current("snapshot").signed
    assert f"{snap.version}.snapshot.json" in names
    assert repo.current("timestamp").signed.snapshot_meta.hashes.keys() == {"sha384"}
    with pytest.raises(Conflict):
        repo.initialise(b"{}", b"{}", {})


def test_publishing_os_signs_a_new_snapshot_and_timestamp(repo: ServerRepository,
                                                         offline: Keys) -> None:
    before = repo.current("timestamp").signed.version
    assert repo.publish("os", _release(repo, offline).to_bytes()) == 2
    assert repo.current("snapshot").signed.meta["os.json"].version == 2
    assert repo.current("timestamp").signed.version == before + 1
    # the repository is read back from disk the way a client walks it
    again = ServerRepository(repo.dir, repo.clock)
    assert again.current("os").signed.version == 2
    assert sorted(again.current("os").signed.targets) == sorted(
        repo.current("os").signed.targets)


def test_os_metadata_signed_by_another_key_is_refused(repo: ServerRepository,
                                                      offline: Keys) -> None:
    md = _release(repo, offline)
    md.signatures.clear()
    from edgeward.trust.tufkeys import signer

    md.sign(signer(offline.targets))  # the targets key may delegate, not sign os targets
    with pytest.raises(SignatureError, match="not signed"):
        repo.publish("os", md.to_bytes())
    assert repo.current("os").signed.version == 1  # nothing half-published


def test_an_old_or_repeated_version_is_refused(repo: ServerRepository, offline: Keys) -> None:
    first = _release(repo, offline)
    repo.publish("os", first.to_bytes())
    with pytest.raises(RollbackError, match="not newer"):
        repo.publish("os", first.to_bytes())


def test_targets_must_have_been_uploaded_with_that_length(repo: ServerRepository,
                                                          offline: Keys) -> None:
    md = _release(repo, offline)
    for target in md.signed.targets.values():
        (repo.blob_dir / target.hashes["sha384"]).unlink()
    md = roles.resign(md, [offline.os], T0, roles.DELEGATED_LIFETIME)
    with pytest.raises(ManifestError, match="was not uploaded"):
        repo.publish("os", md.to_bytes())


def test_os_cannot_sign_outside_os_paths_nor_malformed_custom_fields(
        repo: ServerRepository, offline: Keys) -> None:
    md = _release(repo, offline)
    stray = _blob(repo, b"tenant app")
    stray.path = "apps/acme/app/1/app.squashfs"
    md.signed.targets[stray.path] = stray
    with pytest.raises(ManifestError, match="may not sign apps/acme"):
        repo.publish("os", roles.resign(md, [offline.os], T0, roles.DELEGATED_LIFETIME)
                     .to_bytes())
    md = _release(repo, offline)
    kernel = md.signed.targets[kernel_path("ew-gw1", "1.1.0")]
    kernel.unrecognized_fields["edgeward"]["channel"] = "nightly"
    with pytest.raises(ManifestError, match="unknown channel"):
        repo.publish("os", roles.resign(md, [offline.os], T0, roles.DELEGATED_LIFETIME)
                     .to_bytes())


def test_a_release_needs_kernel_and_rootfs(repo: ServerRepository, offline: Keys) -> None:
    md = _release(repo, offline)
    del md.signed.targets[rootfs_path("ew-gw1", "1.1.0")]
    with pytest.raises(ManifestError, match="needs both a kernel and a rootfs"):
        repo.publish("os", roles.resign(md, [offline.os], T0, roles.DELEGATED_LIFETIME)
                     .to_bytes())


def test_root_rotation_needs_old_and_new_thresholds(repo: ServerRepository,
                                                    offline: Keys) -> None:
    root = repo.current("root")
    new = [keys.generate() for _ in range(3)]
    only_new = roles.rotate_root(root, [], new, 2, T0)
    with pytest.raises(SignatureError, match="current root's threshold"):
        repo.publish("root", only_new.to_bytes())
    one_old = roles.rotate_root(root, offline.roots[:1], new, 2, T0)
    with pytest.raises(SignatureError, match="current root's threshold"):
        repo.publish("root", one_old.to_bytes())
    good = roles.rotate_root(root, offline.roots[:2], new, 2, T0)
    assert repo.publish("root", good.to_bytes()) == 2
    assert (repo.meta_dir / "2.root.json").exists()


def test_a_root_naming_online_keys_the_server_does_not_hold_is_refused(
        repo: ServerRepository, offline: Keys) -> None:
    from edgeward.trust.tufkeys import tuf_key

    stranger = tuf_key(keys.generate().public_key())
    md = roles.rotate_root(repo.current("root"), offline.roots, offline.roots, 2, T0,
                           {"timestamp": [stranger]})
    with pytest.raises(InputError, match="timestamp key this server does not hold"):
        repo.publish("root", md.to_bytes())


def test_online_key_rotation_takes_over_when_the_root_names_it(
        repo: ServerRepository, offline: Keys) -> None:
    pending = repo.rotate_online("timestamp")
    md = roles.rotate_root(repo.current("root"), offline.roots, offline.roots, 2, T0,
                           {"timestamp": [online_key(pending)]})
    repo.publish("root", md.to_bytes())
    stamp = repo.current("timestamp")
    assert [s for s in stamp.signatures] == [pending["keyid"]]
    repo.current("root").signed.verify_delegate("timestamp", stamp.signed_bytes,
                                                stamp.signatures)


def test_timestamp_is_re_signed_before_it_expires(repo: ServerRepository,
                                                  clock: Clock) -> None:
    stamp = repo.current("timestamp").signed
    assert not repo.refresh_timestamp()  # fresh: nothing to do
    clock.now = T0 + dt.timedelta(hours=13)  # past half of its one-day life
    assert repo.refresh_timestamp()
    fresh = repo.current("timestamp").signed
    assert fresh.version == stamp.version + 1 and fresh.expires > stamp.expires
    clock.now = T0 + dt.timedelta(days=5)  # the snapshot (7 days) is renewed too
    snap = repo.current("snapshot").signed.version
    assert repo.refresh_timestamp()
    assert repo.current("snapshot").signed.version == snap + 1


def test_malformed_and_misfiled_metadata_is_refused(repo: ServerRepository) -> None:
    with pytest.raises(InputError, match="malformed"):
        repo.publish("os", b'{"signed": 1}')
    with pytest.raises(InputError, match="signed by the server"):
        repo.publish("timestamp", repo.current_bytes("timestamp"))
    with pytest.raises(InputError, match="type 'root', expected 'targets'"):
        repo.publish("os", repo.current_bytes("root"))


def test_an_uninitialised_repository_refuses_publishing(tmp_path: Path, clock: Clock) -> None:
    repo = ServerRepository(tmp_path / "tuf", clock)
    with pytest.raises(StateError, match="not initialised"):
        repo.publish("os", b"{}")
    assert (repo.online_dir / "timestamp.pem").stat().st_mode & 0o777 == 0o600


def test_concurrent_uploads_of_one_blob_never_mix(repo: ServerRepository) -> None:
    """Two uploads named by the same digest, one honest, one not, interleaved: only
    bytes that hash to the name are kept."""
    import asyncio

    good = os.urandom(3 << 20)
    bad = os.urandom(len(good))
    digest = hashlib.sha384(good).hexdigest()

    async def chunks(data: bytes) -> AsyncIterator[bytes]:
        for i in range(0, len(data), 256 << 10):
            yield data[i:i + (256 << 10)]
            await asyncio.sleep(0)  # let the other upload write in between

    async def both() -> list[object]:
        return await asyncio.gather(repo.store_blob(digest, len(bad), chunks(bad)),
                                    repo.store_blob(digest, len(good), chunks(good)),
                                    return_exceptions=True)

    results = asyncio.run(both())
    assert isinstance(results[0], InputError) and results[1] is True
    assert hashlib.sha384((repo.blob_dir / digest).read_bytes()).hexdigest() == digest
    assert [p.name for p in repo.blob_dir.iterdir()] == [digest]


def test_a_published_target_cannot_change_its_bytes(repo: ServerRepository,
                                                    offline: Keys) -> None:
    repo.publish("os", _release(repo, offline).to_bytes())
    md = roles.resign(repo.current("os"), [offline.os], T0, roles.DELEGATED_LIFETIME)
    path = kernel_path("ew-gw1", "1.1.0")
    other = _blob(repo, b"kernel 1.1.0, rebuilt")
    other.path = path
    md.signed.targets[path] = TargetFile(other.length, other.hashes, path,
                                         md.signed.targets[path].unrecognized_fields)
    with pytest.raises(ManifestError, match="versions are immutable"):
        repo.publish("os", roles.resign(md, [offline.os], T0, roles.DELEGATED_LIFETIME)
                     .to_bytes())


def test_an_online_key_rotation_cut_short_by_a_crash_is_finished_at_start(
        repo: ServerRepository, offline: Keys) -> None:
    old = (repo.online_dir / "timestamp.pem").read_bytes()
    pending = repo.rotate_online("timestamp")
    new = (repo.online_dir / "next-timestamp.pem").read_bytes()
    md = roles.rotate_root(repo.current("root"), offline.roots, offline.roots, 2, T0,
                           {"timestamp": [online_key(pending)]})
    repo.publish("root", md.to_bytes())
    # as if the server died after writing the root and before taking the new key
    write_secret(repo.online_dir / "timestamp.pem", old)
    write_secret(repo.online_dir / "next-timestamp.pem", new)
    again = ServerRepository(repo.dir, repo.clock)
    assert not (again.online_dir / "next-timestamp.pem").exists()
    assert again.online_public()["timestamp"]["keyid"] == pending["keyid"]
