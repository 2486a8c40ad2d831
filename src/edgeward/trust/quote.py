"""Attestation quotes and their pure verifier.

A quote is a DSSE envelope signed by the device identity key over
(serial, nonce, register, event log, slot). :func:`verify_quote` checks, with
no I/O and the time passed in: the device certificate chains to a trusted
manufacturer CA; the quote is signed by that certificate's key; the nonce is
the one the verifier issued; the log replays to the register; the stages come
in boot order; and every measured component is one of the known-good ones.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography import x509

from edgeward.errors import AttestationError, EnvelopeError, InputError, SignatureError
from edgeward.trust.canonical import Fields, canonical, load_object
from edgeward.trust.certs import public_key_of, verify_device_cert
from edgeward.trust.envelope import open_envelope, seal_envelope
from edgeward.trust.keys import PrivateKey, keyid
from edgeward.trust.measurement import COMPONENTS, STAGES, Event, replay

QUOTE_TYPE = "application/vnd.edgeward.quote+json"
MAX_NONCE = 64


@dataclass(frozen=True)
class Quote:
    serial: str
    nonce: bytes
    register: bytes
    events: tuple[Event, ...]
    slot: str

    def to_payload(self) -> bytes:
        return canonical({
            "type": "quote", "serial": self.serial, "nonce": self.nonce.hex(),
            "register": self.register.hex(), "slot": self.slot,
            "events": [e.to_dict() for e in self.events],
        })

    @classmethod
    def from_payload(cls, payload: bytes) -> Quote:
        f = Fields(load_object(payload, "quote", AttestationError), "quote", AttestationError)
        f.expect({"type", "serial", "nonce", "register", "slot", "events"})
        if f.str_("type") != "quote":
            f.fail("type must be 'quote'")
        nonce_hex = f.str_("nonce", 2 * MAX_NONCE)
        events = tuple(Event.from_dict(e, f"quote.events[{i}]")
                       for i, e in enumerate(f.list_("events", 16)))
        return cls(f.str_("serial", 64), f.hex_("nonce", len(nonce_hex) // 2),
                   f.hex_("register", 48), events, f.str_("slot", 1))


def sign_quote(quote: Quote, device_key: PrivateKey) -> bytes:
    return seal_envelope(QUOTE_TYPE, quote.to_payload(), [device_key]).to_json()


@dataclass(frozen=True)
class KnownGood:
    """Accepted digests per measured component (lowercase hex SHA-384)."""

    components: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def merged(self, other: KnownGood) -> KnownGood:
        keys = set(self.components) | set(other.components)
        return KnownGood({k: self.components.get(k, frozenset())
                          | other.components.get(k, frozenset()) for k in keys})

    def to_json(self) -> bytes:
        return canonical({"type": "known-good",
                          "components": {k: sorted(v) for k, v in self.components.items()}})

    @classmethod
    def from_json(cls, data: bytes) -> KnownGood:
        f = Fields(load_object(data, "known-good measurements", InputError),
                   "known-good measurements", InputError)
        f.expect({"type", "components"})
        if f.str_("type") != "known-good":
            f.fail("type must be 'known-good'")
        comps = f.obj["components"]
        if not isinstance(comps, dict) or not all(
                isinstance(v, list) and all(isinstance(d, str) for d in v)
                for v in comps.values()):
            f.fail("components must map names to lists of digests")
        return cls({k: frozenset(v) for k, v in comps.items()})


@dataclass(frozen=True)
class QuoteVerdict:
    serial: str
    register: str
    slot: str
    events: tuple[Event, ...]


def verify_quote(
    quote_bytes: bytes,
    device_cert: x509.Certificate,
    cas: list[x509.Certificate],
    nonce: bytes,
    known_good: KnownGood,
    now: dt.datetime,
) -> QuoteVerdict:
    serial = verify_device_cert(device_cert, cas, now)
    public = public_key_of(device_cert)
    try:
        payload, _ = open_envelope(quote_bytes, QUOTE_TYPE, {keyid(public): public}, "quote")
    except (EnvelopeError, SignatureError) as e:
        raise AttestationError(f"quote refused: {e}") from e
    quote = Quote.from_payload(payload)
    if quote.serial != serial:
        raise AttestationError(f"quote is for {quote.serial!r}, certificate for {serial!r}")
    if not hmac.compare_digest(quote.nonce, nonce):
        raise AttestationError("quote nonce is not the one issued (replayed or stale quote)")
    if replay(list(quote.events)) != quote.register:
        raise AttestationError("event log does not replay to the quoted register")
    stages = tuple(e.stage for e in quote.events)
    if stages != STAGES:
        raise AttestationError(f"boot stages {list(stages)} are not the full chain {list(STAGES)}")
    for event in quote.events:
        if event.component != COMPONENTS[event.stage]:
            raise AttestationError(f"stage {event.stage} measured {event.component!r}")
        if event.digest not in known_good.components.get(event.component, frozenset()):
            raise AttestationError(
                f"{event.component} {event.version} (sha384 {event.digest[:16]}…) "
                "is not a known-good measurement")
    return QuoteVerdict(serial, quote.register.hex(), quote.slot, quote.events)
