"""Attacks on signed OS updates (issue 5 item 9), each against a gateway running a good,
committed release, and each checking three things:

(a) the attack is refused, with a reason naming what was refused;
(b) the gateway still boots its good slot and release: nothing staged (no try-boot),
    its other slot untouched, its fused counter unchanged, no download kept;
(c) once the attack stops (or the keys it used are rotated), a genuine release installs.

The attacker controls what the fleet server serves (:class:`Served`: a compromised
server, or a mirror of it) and, where said, keys: the server's online snapshot and
timestamp keys, a tenant's key, one of the three root keys. Python-tuf's own tests
(``test_updater_top_level_update.py``, ``test_updater_delegation_graphs.py``) cover
the client's rules one by one; these run the whole gateway: agent, update client,
installer and boot chain, against the real server.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil

import pytest
from tuf.api.metadata import Metadata, Root, Snapshot, TargetFile, Targets, Timestamp

from edgeward.board.base import kernel_partition, rootfs_partition
from edgeward.device.agent import Agent
from edgeward.device.updates import installer
from edgeward.device.updates.client import tuf_dir
from edgeward.device.updates.fetcher import download
from edgeward.errors import InputError, PermissionDenied, SecurityError
from edgeward.release import osbuild, publish
from edgeward.trust import keys
from edgeward.trust.canonical import canonical
from edgeward.trust.manifest import peek_kernel_bundle
from edgeward.trust.measurement import COMPONENTS
from edgeward.trust.targets import OS_ROLE, OsTarget, kernel_path, rootfs_path
from edgeward.trust.tufkeys import tuf_key
from tests.updates.attack_tools import (
    HASH,
    Served,
    assert_installs,
    assert_refused,
    assert_unharmed,
    cached_root_versions,
    gateway_clock_ahead,
    largest_file,
    lie_about_desired,
    remember,
    resigned,
    server_clock_ahead,
    sign_snapshot_and_timestamp,
    sign_timestamp,
    sparse_file,
    tenant_client,
    utcnow,
)
from tests.updates.conftest import MODEL, World

EVIL = b"#!attacker kernel\n" * 4096


# --- helpers -------------------------------------------------------------------------------------


def release(world: World, version: str, svn: int, *, delta: bool = False,
            now: dt.datetime | None = None) -> publish.Published:
    """Build and publish a genuine release (signed by the OS vendor's key)."""
    build = world.build(version, svn, base=world.factory.release.directory if delta else None)
    return publish_build(world, build, now)


def publish_build(world: World, build: osbuild.Build, now: dt.datetime | None = None
                  ) -> publish.Published:
    """Publish to every gateway at once (stable, a rollout of one 100% stage), signed by
    the vendor at ``now`` (default: the real now)."""
    with world.admin() as client:
        return publish.publish_os(client, world.ws, build, "stable", now or utcnow(),
                                  stages=["100%"])


def installed(world: World, agent: Agent, version: str, svn: int) -> None:
    """The gateway takes a genuine release: it has refreshed TUF at newer versions."""
    release(world, version, svn)
    outcome = agent.check_updates()
    assert (outcome.action, outcome.version) == ("committed", version), outcome


def add_tenant(world: World, tenant: str) -> str:
    """The platform delegates apps/<tenant>/* to a tenant key (kept in the workspace)."""
    with world.admin() as client:
        return publish.add_tenant(client, world.ws, tenant, None, utcnow())


def rotate_online_keys(world: World) -> None:
    """Incident response to a stolen online key: new timestamp and snapshot keys, named
    by two new roots (the gateway follows them; metadata the old keys signed, cached
    or served, no longer verifies)."""
    with world.admin() as client:
        for role in (Timestamp.type, Snapshot.type):
            publish.rotate(client, world.ws, role, utcnow())


def forged_os(served: Served, version: str, signers: list[keys.PrivateKey],
              blob: TargetFile, *, os_version: int | None = None) -> Metadata[Targets]:
    """The os role as served now, with release ``version``'s kernel swapped for ``blob``,
    signed by ``signers``."""
    md: Metadata[Targets] = served.current(OS_ROLE)
    target = md.signed.targets[kernel_path(MODEL, version)]
    target.length, target.hashes = blob.length, dict(blob.hashes)
    return resigned(md, signers, version=os_version)


def with_targets(md: Metadata[Targets], targets: dict[str, TargetFile],
                 signers: list[keys.PrivateKey], *, same_version: bool = False
                 ) -> Metadata[Targets]:
    """``md`` with ``targets`` added, signed by ``signers``: its next version (an upload),
    or the same version (served in its place)."""
    copy: Metadata[Targets] = Metadata.from_bytes(md.to_bytes())
    copy.signed.targets.update(targets)
    return resigned(copy, signers,
                    version=md.signed.version + (0 if same_version else 1))


def os_target(path: str, kind: str, version: str, blob: TargetFile, svn: int = 9
              ) -> TargetFile:
    """A well-formed OS target (custom fields and all) for ``blob``."""
    target = TargetFile(blob.length, dict(blob.hashes), path)
    target.unrecognized_fields = OsTarget(kind, MODEL, version, "stable", svn).custom()
    return target


# --- 1. rollback ---------------------------------------------------------------------------------


def test_rollback_to_an_older_timestamp_is_refused(world: World) -> None:
    """Attack: after a gateway saw timestamp vN, the server replays an older timestamp
    (genuinely signed, not expired) to hide the releases published since.
    Defence: the client keeps the last timestamp it trusted; a lower version is a
    rollback (TUF 5.4.3)."""
    agent = world.gateway("gw-1")
    served = Served(world)
    old_timestamp = served.raw("timestamp.json")
    installed(world, agent, "1.1.0", 2)
    release(world, "1.2.0", 3)
    good, saved = remember(agent.board), served.checkpoint()

    served.put("timestamp.json", old_timestamp)
    outcome = agent.check_updates()

    assert_refused(outcome, "metadata rollback refused", "timestamp version")
    assert_unharmed(agent.board, good)
    served.restore(saved)
    assert_installs(agent, "1.2.0")


@pytest.mark.parametrize("role", [Snapshot.type, Targets.type, OS_ROLE])
def test_rollback_of_snapshot_targets_or_os_with_the_online_keys_is_refused(
        world: World, role: str) -> None:
    """Attack: an attacker holding the server's online keys signs a fresh timestamp
    naming an older snapshot, or a fresh snapshot naming older targets/os versions
    than the gateway has seen (to bring back an old os role, or drop a delegation).
    Defence: timestamp -> snapshot and snapshot -> role versions never decrease
    (TUF 5.4.3.2, 5.5.5)."""
    agent = world.gateway("gw-1")
    served = Served(world)
    add_tenant(world, "acme")  # targets v2, so there is an older targets to go back to
    seen_snapshot = served.name_of(Snapshot.type)
    installed(world, agent, "1.1.0", 2)  # the gateway sees targets v2, os v2
    release(world, "1.2.0", 3)
    good, saved = remember(agent.board), served.checkpoint()
    stolen = served.stolen_keys()

    if role == Snapshot.type:  # a genuine snapshot, older than the one the gateway saw
        sign_timestamp(served, stolen[Timestamp.type], seen_snapshot)
        expected = "snapshot version must be >="
    else:
        sign_snapshot_and_timestamp(served, stolen, versions={role: 1})
        expected = f"{role}.json version"
    outcome = agent.check_updates()

    assert_refused(outcome, "metadata rollback refused", expected)
    assert_unharmed(agent.board, good)
    served.restore(saved)
    rotate_online_keys(world)
    assert_installs(agent, "1.2.0")


# --- 2. freeze -----------------------------------------------------------------------------------


def test_freeze_replaying_the_last_timestamp_after_it_expired_is_refused(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack: a frozen server (or a mirror that stopped syncing) goes on serving the
    last timestamp it had, so gateways never learn of a security release. Two days
    later, by the gateway's clock, that timestamp has expired.
    Defence: expired timestamps are refused (TUF 5.4.4)."""
    agent = world.gateway("gw-1")
    release(world, "1.1.0", 2)
    good = remember(agent.board)

    gateway_clock_ahead(monkeypatch, dt.timedelta(days=2))
    outcome = agent.check_updates()

    assert_refused(outcome, "expired metadata refused", "timestamp.json is expired")
    assert_unharmed(agent.board, good)
    server_clock_ahead(world, dt.timedelta(days=2))  # the server re-signs again
    assert_installs(agent, "1.1.0")


@pytest.mark.parametrize("role", [Timestamp.type, Snapshot.type])
def test_freeze_with_metadata_signed_already_expired_is_refused(world: World,
                                                                role: str) -> None:
    """Attack: an attacker with the online keys serves a new timestamp, or a new
    snapshot, whose expiry is already past (a freeze dressed as new metadata).
    Defence: expiry is checked on every final timestamp and snapshot (TUF 5.4.4, 5.5.6)."""
    agent = world.gateway("gw-1")
    served = Served(world)
    release(world, "1.1.0", 2)
    good, saved = remember(agent.board), served.checkpoint()
    stolen = served.stolen_keys()
    past = utcnow() - dt.timedelta(hours=1)

    if role == Timestamp.type:
        sign_timestamp(served, stolen[Timestamp.type], served.name_of(Snapshot.type),
                       expires=past)
    else:
        sign_snapshot_and_timestamp(served, stolen, snapshot_expires=past)
    outcome = agent.check_updates()

    assert_refused(outcome, "expired metadata refused", f"{role}.json is expired")
    assert_unharmed(agent.board, good)
    served.restore(saved)
    rotate_online_keys(world)
    assert_installs(agent, "1.1.0")


def test_freeze_of_the_os_role_past_its_expiry_is_refused(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack: the OS vendor's os role is served as it was signed 91 days ago (its
    lifetime is 90), with timestamp and snapshot fresh: a frozen os role hides releases
    even while the server re-signs.
    Defence: delegated targets metadata expires too (TUF 5.6.5)."""
    agent = world.gateway("gw-1")
    release(world, "1.1.0", 2)
    good = remember(agent.board)
    later = dt.timedelta(days=91)

    gateway_clock_ahead(monkeypatch, later)
    server_clock_ahead(world, later)  # timestamp and snapshot are re-signed: only os is old
    outcome = agent.check_updates()

    assert_refused(outcome, "expired metadata refused", "os is expired")
    assert_unharmed(agent.board, good)
    release(world, "1.2.0", 3, now=utcnow() + later)  # the vendor signs again
    assert_installs(agent, "1.2.0")


# --- 3. mix and match ----------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "expected"), [
    # an older snapshot differs in length (then as long as signed, or longer: cut) or hash
    (Snapshot.type, ("does not match what is signed", "more data than signed")),
    (Targets.type, "Expected targets v2, got v1"),
    (OS_ROLE, "Expected os v3, got v2"),
])
def test_mix_and_match_of_metadata_from_another_snapshot_is_refused(
        world: World, role: str, expected: str | tuple[str, ...]) -> None:
    """Attack: the server serves, under the name the current timestamp/snapshot gives,
    a file from another consistent snapshot: an older snapshot, or the targets or os
    role of another repository state (e.g. an os role without the newest release).
    Defence: the timestamp pins the snapshot's length and SHA-384; the snapshot pins
    each role's version (TUF 5.5.2, 5.6.4)."""
    agent = world.gateway("gw-1")
    served = Served(world)
    add_tenant(world, "acme")  # targets v2
    release(world, "1.1.0", 2)  # os v2
    release(world, "1.2.0", 3)  # os v3
    good, saved = remember(agent.board), served.checkpoint()

    name = served.name_of(role)
    version = int(name.split(".")[0])
    served.put(name, served.raw(f"{version - 1}.{role}.json"))
    outcome = agent.check_updates()

    assert_refused(outcome, expected)
    assert_unharmed(agent.board, good)
    served.restore(saved)
    assert_installs(agent, "1.2.0")


# --- 4. arbitrary target -------------------------------------------------------------------------


@pytest.mark.parametrize(("file", "size", "expected"), [
    ("kernel.img", "same", "does not match its signed length and sha384"),
    ("kernel.img", "longer", "more than its signed"),
    ("rootfs.img", "same", "does not match its signed length and sha384"),
    ("rootfs.img", "longer", "more than its signed"),
])
def test_arbitrary_target_bytes_are_refused_and_never_reach_a_slot(
        world: World, file: str, size: str, expected: str) -> None:
    """Attack: the server serves other bytes than the vendor signed for a target of the
    release: the same length, or longer.
    Defence: a download stops at the signed length and is checked against the signed
    SHA-384 before anything is written to flash; the partial file is dropped."""
    agent = world.gateway("gw-1")
    served = Served(world)
    release(world, "1.1.0", 2)  # no delta: the full rootfs is fetched
    good, saved = remember(agent.board), served.checkpoint()

    blob = served.blob_of(f"os/{MODEL}/1.1.0/{file}")
    genuine = blob.read_bytes()
    forged = bytes(b ^ 0x5A for b in genuine)
    blob.write_bytes(forged if size == "same" else genuine + forged)
    outcome = agent.check_updates()

    assert_refused(outcome, file, expected)
    assert_unharmed(agent.board, good)
    served.restore(saved)
    assert_installs(agent, "1.1.0")


def test_a_tampered_delta_is_dropped_and_only_the_signed_rootfs_is_installed(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack: the rootfs delta (a patch against the running rootfs) is replaced by other
    bytes of the same length.
    Defence: the delta fails its signed hash and is dropped; the full rootfs target is
    fetched instead, and only a rootfs matching the signed SHA-384 reaches the slot."""
    agent = world.gateway("gw-1")
    served = Served(world)
    published = release(world, "1.1.0", 2, delta=True)
    delta = next(p for p in published.targets if ".delta-" in p)
    blob = served.blob_of(delta)
    blob.write_bytes(bytes(b ^ 0x5A for b in blob.read_bytes()))
    fetched: list[str] = []

    def recording(http: object, url: str, *args: object, **kw: object) -> object:
        fetched.append(url.rpartition("/")[2].partition(".")[2])
        return download(http, url, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(installer, "download", recording)
    said: list[str] = []
    agent.say = said.append

    outcome = agent.check_updates()

    assert (outcome.action, outcome.version) == ("committed", "1.1.0"), outcome
    assert fetched == ["kernel.img", delta.rpartition("/")[2], "rootfs.img"], fetched
    assert any("written (full image)" in line for line in said), said
    rootfs = served.current(OS_ROLE).signed.targets[rootfs_path(MODEL, "1.1.0")]
    flashed = agent.board.partition_path(rootfs_partition("b")).read_bytes()
    assert hashlib.sha384(flashed).hexdigest() == rootfs.hashes[HASH]


# --- 5. os role signed by the wrong key ----------------------------------------------------------


@pytest.mark.parametrize("key", ["attacker", "targets", "tenant", "none"])
def test_os_metadata_not_signed_by_the_os_key_is_refused(world: World, key: str) -> None:
    """Attack: a compromised server serves os metadata pointing the release at its own
    kernel, signed by a key of its own, by the top-level targets key (which delegates
    os/* but may not sign it), by a tenant's key, or not at all.
    Defence: the os role verifies only against the key(s) and threshold top-level
    targets delegates os to (TUF 5.6.3)."""
    agent = world.gateway("gw-1")
    served = Served(world)
    if key == "tenant":
        add_tenant(world, "acme")
    release(world, "1.1.0", 2)
    good, saved = remember(agent.board), served.checkpoint()
    signers = [] if key == "none" else [
        keys.generate() if key == "attacker" else world.ws.key(
            "targets" if key == "targets" else "apps-acme")]

    served.put(served.name_of(OS_ROLE),
               forged_os(served, "1.1.0", signers, served.put_blob(EVIL)))
    outcome = agent.check_updates()

    assert_refused(outcome, "not signed by the trusted keys", "os was signed by 0/1 keys")
    assert_unharmed(agent.board, good)
    served.restore(saved)
    assert_installs(agent, "1.1.0")


# --- 6. endless data -----------------------------------------------------------------------------


@pytest.mark.parametrize(("what", "expected"), [
    ("kernel", "more than its signed"),
    (Timestamp.type, "more data than signed"),
    (Snapshot.type, "more data than signed"),
    (OS_ROLE, "more data than signed"),
])
def test_endless_data_is_cut_at_the_signed_or_maximum_length(world: World, what: str,
                                                            expected: str) -> None:
    """Attack: the server answers a request with endless data: a kernel target of 1 GiB,
    a timestamp or os role of 8 MiB, a snapshot longer than the timestamp says.
    Defence: targets stop at their signed length; the snapshot at the length the
    timestamp signs; timestamp and delegated roles at python-tuf's maxima (16 KiB,
    5 MB). Nothing of it is kept: no unbounded disk use (TUF 5.4.1, 5.5.1, 5.6.1,
    5.7.3)."""
    agent = world.gateway("gw-1")
    served = Served(world)
    release(world, "1.1.0", 2)
    good, saved = remember(agent.board), served.checkpoint()

    if what == "kernel":
        blob = served.blob_of(kernel_path(MODEL, "1.1.0"))
        sparse_file(blob, 1 << 30, blob.read_bytes())
    else:
        name = served.name_of(what)
        sparse_file(served.meta / name, 8 << 20, served.raw(name))
    outcome = agent.check_updates()

    assert_refused(outcome, expected)
    assert_unharmed(agent.board, good)
    assert largest_file(tuf_dir(agent.board)) < 64 << 10
    assert largest_file(agent.board.data_dir) < 8 << 20
    served.restore(saved)
    assert_installs(agent, "1.1.0")


# --- 7. tenants ----------------------------------------------------------------------------------


def test_a_tenant_cannot_publish_os_targets_nor_another_tenants_apps(world: World) -> None:
    """Attack: an admin of tenant acme (API token for acme, holding the apps-acme key)
    publishes OS targets in its own role, uploads the os role or top-level targets
    itself, and publishes apps of tenant 'other', in its own role or in theirs.
    Defence: the server checks every target path of an upload against the delegation
    (400) and every role against the token's tenant (403); nothing is published."""
    agent = world.gateway("gw-1")
    good = remember(agent.board)
    add_tenant(world, "acme")
    add_tenant(world, "other")
    served = Served(world)
    before = {role: served.name_of(role)
              for role in (OS_ROLE, Targets.type, "apps-acme", "apps-other")}
    acme_key = world.ws.key("apps-acme")
    os_path, other_path = kernel_path(MODEL, "6.6.6"), "apps/other/web/1.0/app.tar"
    evil_file = world.tmp / "kernel.img"
    evil_file.write_bytes(EVIL)

    with tenant_client(world, "acme") as acme:
        blob = publish.upload_file(acme, evil_file)
        for path in (os_path, other_path):
            with pytest.raises(InputError, match=f"apps-acme may not sign {path}.*HTTP 400"):
                publish.upload_role(acme, "apps-acme", with_targets(
                    served.current("apps-acme"), {path: os_target(path, "kernel", "6.6.6",
                                                                  blob)}, [acme_key]))
        with pytest.raises(PermissionDenied, match="HTTP 403"):
            publish.upload_role(acme, OS_ROLE, with_targets(
                served.current(OS_ROLE), {os_path: os_target(os_path, "kernel", "6.6.6",
                                                             blob)}, [acme_key]))
        with pytest.raises(PermissionDenied, match="HTTP 403"):
            publish.upload_role(acme, Targets.type, with_targets(
                served.current(Targets.type), {}, [acme_key]))
        with pytest.raises(PermissionDenied, match="may publish only apps-acme.*HTTP 403"):
            publish.upload_role(acme, "apps-other", with_targets(
                served.current("apps-other"), {other_path: TargetFile(
                    blob.length, dict(blob.hashes), other_path)}, [acme_key]))

    assert {role: served.name_of(role) for role in before} == before
    assert agent.check_updates().action == "none"
    assert_unharmed(agent.board, good)


def test_a_tenant_key_never_speaks_for_os_or_other_tenants_paths_on_the_wire(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack: a compromised server serves apps-acme metadata genuinely signed by tenant
    acme's key that lists an OS release 6.6.6 of its own, its own kernel for the
    vendor's release 1.1.0 and an app of tenant 'other'; and tells the gateway to
    install 6.6.6.
    Defence: top-level targets delegates os/* and apps/<tenant>/* by path pattern,
    terminating: the client looks os/... up in the os role only, apps/other/... in
    apps-other only (TUF 5.6.7). The same metadata is trusted for apps/acme/... ."""
    agent = world.gateway("gw-1")
    served = Served(world)
    add_tenant(world, "acme")
    add_tenant(world, "other")
    release(world, "1.1.0", 2)
    good = remember(agent.board)
    vendor_kernel = served.current(OS_ROLE).signed.targets[kernel_path(MODEL, "1.1.0")]
    evil = served.put_blob(EVIL)
    own, theirs = "apps/acme/web/1.0/app.tar", "apps/other/web/1.0/app.tar"
    served.put(served.name_of("apps-acme"), with_targets(served.current("apps-acme"), {
        kernel_path(MODEL, "6.6.6"): os_target(kernel_path(MODEL, "6.6.6"), "kernel",
                                               "6.6.6", evil),
        rootfs_path(MODEL, "6.6.6"): os_target(rootfs_path(MODEL, "6.6.6"), "rootfs",
                                               "6.6.6", evil),
        kernel_path(MODEL, "1.1.0"): os_target(kernel_path(MODEL, "1.1.0"), "kernel",
                                               "1.1.0", evil, svn=2),
        own: TargetFile(evil.length, dict(evil.hashes), own),
        theirs: TargetFile(evil.length, dict(evil.hashes), theirs),
    }, [world.ws.key("apps-acme")], same_version=True))  # the version the snapshot names

    with monkeypatch.context() as m:
        lie_about_desired(m, "6.6.6")
        outcome = agent.check_updates()

    assert_refused(outcome, f"target {kernel_path(MODEL, '6.6.6')} is not signed by the "
                            "role trusted for it")
    assert_unharmed(agent.board, good)
    tuf = agent.updater().tuf(good.slot)
    try:
        assert tuf.target(own).hashes == evil.hashes  # the tenant's own path: its key counts
        for path in (theirs, kernel_path(MODEL, "6.6.6")):
            with pytest.raises(SecurityError, match="not signed by the role trusted for it"):
                tuf.target(path)
        assert tuf.target(kernel_path(MODEL, "1.1.0")).hashes == vendor_kernel.hashes
    finally:
        tuf.close()
    assert_installs(agent, "1.1.0")  # the vendor's release, with the forgery still served
    flashed = agent.board.partition_path(kernel_partition("b")).read_bytes()
    assert hashlib.sha384(flashed).hexdigest() == vendor_kernel.hashes[HASH]


# --- 8. stolen online keys -----------------------------------------------------------------------


def test_stolen_online_keys_cannot_forge_os_targets_and_rotation_locks_them_out(
        world: World) -> None:
    """Attack: an attacker on the server reads the online snapshot and timestamp keys
    and publishes a new snapshot naming forged os metadata (its kernel for 1.1.0,
    signed by its own key: it has no os key).
    Defence: snapshot and timestamp only say which versions are current; the os role
    still verifies against the offline-delegated os key. What the stolen keys did
    achieve: the gateway trusts the attacker's newer timestamp and so refuses the
    honest server's older one (fast-forward) until the online keys are rotated;
    after rotation, metadata signed with the old keys is refused and updates flow."""
    agent = world.gateway("gw-1")
    served = Served(world)
    release(world, "1.1.0", 2)
    good, saved = remember(agent.board), served.checkpoint()
    stolen = served.stolen_keys()
    evil = served.put_blob(EVIL)

    def forge(version: str) -> None:
        os_version = served.current(OS_ROLE).signed.version + 1
        sign_snapshot_and_timestamp(served, stolen, roles={OS_ROLE: forged_os(
            served, version, [keys.generate()], evil, os_version=os_version)})

    forge("1.1.0")
    assert_refused(agent.check_updates(), "not signed by the trusted keys",
                   "os was signed by 0/1 keys")
    assert_unharmed(agent.board, good)

    served.restore(saved)  # the attacker is thrown off the server, its keys are not
    assert_refused(agent.check_updates(force=True), "metadata rollback refused",
                   "timestamp version")
    assert_unharmed(agent.board, good)
    rotate_online_keys(world)
    assert_installs(agent, "1.1.0")

    release(world, "1.2.0", 3)
    good, saved = remember(agent.board), served.checkpoint()
    forge("1.2.0")  # the old keys again
    assert_refused(agent.check_updates(), "not signed by the trusted keys",
                   "timestamp was signed by 0/1 keys")
    assert_unharmed(agent.board, good)
    served.restore(saved)
    assert_installs(agent, "1.2.0")
    now_held = served.stolen_keys()
    assert all(keys.keyid(now_held[r].public_key()) != keys.keyid(stolen[r].public_key())
               for r in stolen)


# --- 9. root keys --------------------------------------------------------------------------------


def attacker_root(current: Metadata[Root], stolen: list[keys.PrivateKey],
                  attacker: keys.PrivateKey) -> Metadata[Root]:
    """The next root, naming the attacker's key for root (threshold 1) and targets,
    signed by the ``stolen`` root keys and the attacker's."""
    md: Metadata[Root] = Metadata.from_bytes(current.to_bytes())
    root = md.signed
    for role in (Root.type, Targets.type):
        for keyid in list(root.roles[role].keyids):
            root.revoke_key(keyid, role)
        root.add_key(tuf_key(attacker.public_key()), role)
    root.roles[Root.type].threshold = 1
    return resigned(md, [*stolen, attacker], version=root.version + 1)


def test_a_root_signed_by_fewer_than_the_threshold_of_root_keys_is_refused(
        world: World) -> None:
    """Attack: an attacker with one of the three root keys (threshold two) and publisher
    credentials publishes root v2 naming its own root and targets keys: through the
    API, and served directly by a compromised server.
    Defence: a new root needs a threshold of the trusted root's keys (TUF 5.3.4); the
    server checks that before publishing, the gateway before trusting."""
    agent = world.gateway("gw-1")
    served = Served(world)
    release(world, "1.1.0", 2)
    good, saved = remember(agent.board), served.checkpoint()
    forged = attacker_root(served.current(Root.type), [world.ws.key("root-1")],
                           keys.generate())

    with world.admin() as client, pytest.raises(
            InputError, match="not signed by the current root's threshold.*HTTP 400"):
        publish.upload_role(client, Root.type, forged)
    assert served.name_of(Root.type) == "1.root.json"

    served.put("2.root.json", forged)
    outcome = agent.check_updates()

    assert_refused(outcome, "not signed by the trusted keys", "root was signed by 1/2 keys")
    assert_unharmed(agent.board, good)
    assert cached_root_versions(agent.board) == [1]
    served.restore(saved)
    assert_installs(agent, "1.1.0")


def test_a_root_rotation_is_followed_and_the_old_root_keys_are_then_worthless(
        world: World) -> None:
    """A legitimate root rotation (new root keys, root v2 signed by old and new) is
    followed by a gateway shipping root v1: it walks 1.root.json -> 2.root.json and
    installs a release published after it (which ships root v2).
    Attack, then: the retired root keys, even a threshold of them, sign root v3.
    Defence: only the keys of the newest trusted root count (TUF 5.3.4)."""
    agent = world.gateway("gw-1")
    served = Served(world)
    retired = world.ws.roots()
    with world.admin() as client:
        publish.rotate(client, world.ws, Root.type, utcnow())
    release(world, "1.1.0", 2)

    outcome = agent.check_updates()

    assert (outcome.action, outcome.version) == ("committed", "1.1.0"), outcome
    assert cached_root_versions(agent.board) == [1, 2]

    release(world, "1.2.0", 3)
    good, saved = remember(agent.board), served.checkpoint()
    forged = attacker_root(served.current(Root.type), retired[:2], keys.generate())
    with world.admin() as client, pytest.raises(InputError, match="HTTP 400"):
        publish.upload_role(client, Root.type, forged)
    served.put("3.root.json", forged)
    assert_refused(agent.check_updates(), "not signed by the trusted keys",
                   "root was signed by 0/2 keys")
    assert_unharmed(agent.board, good)
    served.restore(saved)
    assert_installs(agent, "1.2.0")


# --- 10. malicious mirror ------------------------------------------------------------------------


@pytest.mark.parametrize(("top", "expected"), [
    # the re-signed snapshot's signature differs in length (DER): shorter, or longer (cut)
    (Snapshot.type, ("does not match what is signed", "more data than signed")),
    (Timestamp.type, "timestamp was signed by 0/1 keys"),
])
def test_a_mirror_serving_a_forged_release_is_refused(
        world: World, top: str, expected: str | tuple[str, ...]) -> None:
    """Attack: a malicious mirror (no keys of the repository at all) serves its own
    kernel for release 1.1.0 and re-signs every layer of metadata above it with a key
    of its own, up to the snapshot, or up to the timestamp. (A forged kernel alone,
    and a forged os role alone: tests 4 and 5.) Gateways pin the fleet server's CA,
    so the mirror here is whoever rewrites the files under DATA/tuf the server serves.
    Defence: each layer is pinned by the one above (the timestamp by the root's
    timestamp key, the snapshot by the timestamp's length and hash), up to the root
    the gateway's verified rootfs ships: the topmost forged layer fails."""
    agent = world.gateway("gw-1")
    served = Served(world)
    release(world, "1.1.0", 2)
    good, saved = remember(agent.board), served.checkpoint()
    mirror_key = keys.generate()

    blob = served.blob_of(kernel_path(MODEL, "1.1.0"))
    blob.write_bytes(EVIL[:1] * blob.stat().st_size)
    served.put(served.name_of(OS_ROLE),
               forged_os(served, "1.1.0", [mirror_key], served.put_blob(EVIL)))
    name = served.name_of(Snapshot.type)
    served.put(name, resigned(served.load(name), [mirror_key]))
    if top == Timestamp.type:
        sign_timestamp(served, mirror_key, served.name_of(Snapshot.type))
    outcome = agent.check_updates()

    assert_refused(outcome, expected)
    assert_unharmed(agent.board, good)
    served.restore(saved)
    assert_installs(agent, "1.1.0")


# --- 11. downgrade -------------------------------------------------------------------------------


def test_a_signed_release_below_the_fused_os_counter_is_refused(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack: a genuinely signed older-generation release (security version 1, say
    with a known hole) is offered to a gateway whose OS counter is fused at 2, by a
    compromised server (the honest server does not offer it).
    Defence: the installer compares the release's signed security version with the
    fuse before downloading anything."""
    agent = world.gateway("gw-1")
    installed(world, agent, "1.1.0", 2)
    assert agent.board.fuses().os_security_version == 2
    release(world, "1.0.1", 1)
    good = remember(agent.board)

    assert agent.check_updates().action == "none"  # the honest server skips it
    with monkeypatch.context() as m:
        lie_about_desired(m, "1.0.1")
        outcome = agent.check_updates()

    assert_refused(outcome, "security version 1, below the fused 2: downgrade refused")
    assert_unharmed(agent.board, good)
    release(world, "1.2.0", 3)
    assert_installs(agent, "1.2.0")


def test_an_old_kernel_relabelled_as_a_new_release_is_refused(world: World) -> None:
    """Attack: someone holding the os role's key publishes the factory's 1.0.0 kernel
    bundle and rootfs (genuinely signed by the kernel key, security version 1) as
    release 1.0.2 claiming security version 2, to a gateway fused at 2.
    Defence: the written slot is verified as BL2 will boot it: the bundle's own signed
    security version is below the fuse, so the release is refused and never staged."""
    agent = world.gateway("gw-1")
    installed(world, agent, "1.1.0", 2)
    good = remember(agent.board)
    publish_build(world, relabelled(world, "1.0.2", 2))

    outcome = agent.check_updates()

    assert_refused(outcome, "kernel bundle security version 1 is below the fused counter 2")
    assert_unharmed(agent.board, good, inactive_untouched=False)  # written, never staged
    release(world, "1.2.0", 3)
    assert_installs(agent, "1.2.0")


def relabelled(world: World, version: str, svn: int) -> osbuild.Build:
    """The factory's release files, described as release ``version`` of ``svn``."""
    out = world.tmp / f"relabelled-{version}"
    out.mkdir()
    factory = world.factory.release
    shutil.copy(factory.kernel, out / "kernel.img")
    shutil.copy(factory.rootfs, out / "rootfs.img")
    bundle = peek_kernel_bundle(factory.kernel.read_bytes())
    (out / "release.json").write_bytes(canonical({
        "model": MODEL, "version": version, "security_version": svn,
        "measurements": {COMPONENTS["bl2"]: bundle.digest,
                         COMPONENTS["kernel"]: bundle.rootfs.root_hash.hex()}}))
    return osbuild.Build(out)


# --- gaps this battery found in src, since fixed ------------------------------------------------


@pytest.mark.parametrize("role", [Timestamp.type, Snapshot.type])
def test_a_refusal_names_the_metadata_file_refused(world: World, role: str) -> None:
    """(a) asks for a reason naming what was refused. A timestamp.json of 8 MiB is
    refused as 'target os/ew-gw1/1.2.0/kernel.img: more data than signed: refused
    (Downloaded 1048576 bytes exceeding the maximum allowed length of 16384)', and a
    snapshot swapped for an older one as '... does not match what is signed: Observed
    hash ...' (or length): neither said which metadata file was refused (fixed: the
    fetcher remembers the last metadata file it fetched)."""
    agent = world.gateway("gw-1")
    served = Served(world)
    release(world, "1.1.0", 2)
    release(world, "1.2.0", 3)

    if role == Timestamp.type:  # endless data
        sparse_file(served.meta / "timestamp.json", 8 << 20, served.raw("timestamp.json"))
    else:  # mix and match
        name = served.name_of(Snapshot.type)
        served.put(name, served.raw(f"{int(name.split('.')[0]) - 1}.snapshot.json"))
    outcome = agent.check_updates()

    assert_refused(outcome, f"{role}.json")


def test_a_release_hidden_by_an_attack_installs_at_the_next_check_once_it_stops(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A freeze attack (test 2) holds security release 1.1.0 back for a while; once the
    server re-signs again, the gateway's next regular (unforced) check must install
    it. It did not: the refusal put 1.1.0 in the gateway's failed list ('skipped:
    failed here before'), so a brief attack, or a brief outage of the server's
    re-signing, kept a security release off every gateway that checked meanwhile
    (fixed: only a refusal of bytes TUF vouched for is remembered)."""
    agent = world.gateway("gw-1")
    release(world, "1.1.0", 2)
    with monkeypatch.context() as m:
        gateway_clock_ahead(m, dt.timedelta(days=2))
        assert_refused(agent.check_updates(), "timestamp.json is expired")

    outcome = agent.check_updates()  # the attack is over; a regular check

    assert (outcome.action, outcome.version) == ("committed", "1.1.0"), outcome
