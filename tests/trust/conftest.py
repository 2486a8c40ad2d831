"""Shared fixtures for the trust core: real keys, a real CA, real signed documents.

Everything is made at test time with the project's own functions (pyca
``cryptography`` underneath); nothing is mocked. Key generation is the slow
part, so the key set is made once per session and only ever read.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cryptography import x509

from edgeward.trust import certs, keys
from edgeward.trust.hashtree import BLOCK_SIZE, Geometry, TreeParams
from edgeward.trust.keys import Algorithm, PrivateKey, PublicKey
from edgeward.trust.manifest import Bl2Manifest, KernelBundle
from edgeward.trust.measurement import COMPONENTS, STAGES, Event, replay
from edgeward.trust.quote import KnownGood, Quote

# A fixed reference time: every pure verifier takes the time as an argument.
NOW = dt.datetime(2031, 3, 14, 9, 26, 53, tzinfo=dt.UTC)


@dataclass(frozen=True)
class World:
    """One coherent set of keys, certificates and valid documents."""

    root_key: PrivateKey  # BL2 root key (its hash is "fused")
    kernel_key: PrivateKey  # P-384 kernel signing key, embedded in BL2
    ed_key: PrivateKey  # an Ed25519 signing key
    stranger: PrivateKey  # a key nobody trusts
    ca_key: PrivateKey
    ca_cert: x509.Certificate
    other_ca_key: PrivateKey
    other_ca_cert: x509.Certificate
    device_key: PrivateKey
    device_cert: x509.Certificate
    serial: str
    bl2: Bl2Manifest
    bundle: KernelBundle
    events: tuple[Event, ...]
    known_good: KnownGood
    nonce: bytes
    now: dt.datetime = NOW

    @property
    def fused_root_hash(self) -> bytes:
        return keys.key_hash(self.root_key.public_key())

    @property
    def kernel_public(self) -> PublicKey:
        return self.kernel_key.public_key()

    def quote(self, **changes: object) -> Quote:
        fields: dict[str, object] = {
            "serial": self.serial, "nonce": self.nonce, "register": replay(list(self.events)),
            "events": self.events, "slot": "a",
        }
        fields.update(changes)
        return Quote(**fields)  # type: ignore[arg-type]


def make_events(version: str = "1.2.3", svn: int = 3) -> tuple[Event, ...]:
    return tuple(
        Event(stage, COMPONENTS[stage], os.urandom(48).hex(), version, svn,
              "" if stage == "os" else os.urandom(48).hex())
        for stage in STAGES
    )


def make_bundle(data_blocks: int = 8, version: str = "2.0.0", svn: int = 2) -> KernelBundle:
    data_size = data_blocks * BLOCK_SIZE
    tree = Geometry(data_size, BLOCK_SIZE).tree_size()
    return KernelBundle(
        version=version, security_version=svn, model="ew-gw1",
        cmdline="console=ttyS0 root=/dev/dm-0 ro",
        kernel=os.urandom(300), initrd=os.urandom(200),
        rootfs=TreeParams(data_size=data_size, hash_offset=data_size, block_size=BLOCK_SIZE,
                          salt=os.urandom(32), root_hash=os.urandom(48)),
        rootfs_size=data_size + tree,
    )


def make_device(ca_key: PrivateKey, ca_cert: x509.Certificate, serial: str,
                algorithm: Algorithm = Algorithm.ECDSA_P384,
                now: dt.datetime = NOW) -> tuple[PrivateKey, x509.Certificate]:
    key = keys.generate(algorithm)
    cert = certs.issue(ca_key, ca_cert, certs.make_csr(key, serial), serial, "ew-gw1", now,
                       days=365)
    return key, cert


@pytest.fixture(scope="session")
def now() -> dt.datetime:
    return NOW


@pytest.fixture(scope="session")
def new_bundle() -> Callable[..., KernelBundle]:
    """``make_bundle(data_blocks=8, version=..., svn=...)``: a fresh, valid kernel bundle."""
    return make_bundle


@pytest.fixture(scope="session")
def new_events() -> Callable[..., tuple[Event, ...]]:
    """``make_events(version=..., svn=...)``: one event per boot stage, in boot order."""
    return make_events


@pytest.fixture(scope="session")
def new_device() -> Callable[..., tuple[PrivateKey, x509.Certificate]]:
    """``make_device(ca_key, ca_cert, serial, algorithm, now)``: a device key and its cert."""
    return make_device


@pytest.fixture(scope="session")
def world() -> World:
    ca_key = keys.generate()
    ca_cert = certs.make_ca(ca_key, "Test Gateways Ltd", NOW)
    other_ca_key = keys.generate()
    other_ca_cert = certs.make_ca(other_ca_key, "Someone Else Ltd", NOW)
    serial = "gw-0001"
    device_key, device_cert = make_device(ca_key, ca_cert, serial)
    kernel_key = keys.generate()
    events = make_events()
    known_good = KnownGood({e.component: frozenset({e.digest}) for e in events})
    return World(
        root_key=keys.generate(), kernel_key=kernel_key,
        ed_key=keys.generate(Algorithm.ED25519), stranger=keys.generate(),
        ca_key=ca_key, ca_cert=ca_cert, other_ca_key=other_ca_key, other_ca_cert=other_ca_cert,
        device_key=device_key, device_cert=device_cert, serial=serial,
        bl2=Bl2Manifest("1.0.0", 1, (kernel_key.public_key(),), b"\x7fELF bl2 code", "ew-gw1"),
        bundle=make_bundle(), events=events, known_good=known_good, nonce=os.urandom(32),
    )
