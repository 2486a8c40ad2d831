"""Measured boot replay, and the pure attestation verifier."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import os
from typing import Any

import pytest

from edgeward.errors import AttestationError, CertificateError, Error
from edgeward.trust import keys
from edgeward.trust.canonical import canonical
from edgeward.trust.envelope import Envelope, seal_envelope
from edgeward.trust.measurement import (
    COMPONENTS,
    HEALTHY_OS_STATE,
    INITIAL,
    STAGES,
    Event,
    extend,
    os_state_digest,
    replay,
)
from edgeward.trust.quote import QUOTE_TYPE, KnownGood, Quote, sign_quote, verify_quote


def one_line(error: Error) -> str:
    message = str(error)
    assert message.strip() and message.splitlines() == [message], repr(message)
    return message


def verify(world: Any, quote_bytes: bytes, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "device_cert": world.device_cert, "cas": [world.ca_cert], "nonce": world.nonce,
        "known_good": world.known_good, "now": world.now,
    }
    args.update(kw)
    return verify_quote(quote_bytes, **args)


def refused(world: Any, quote_bytes: bytes, error: type[Error] = AttestationError,
            **kw: Any) -> str:
    with pytest.raises(error) as info:
        verify(world, quote_bytes, **kw)
    assert type(info.value) is error
    return one_line(info.value)


# ---------------------------------------------------------------------------- measurement


def test_replay_matches_a_manual_pcr_extend(world: Any) -> None:
    register = bytes(48)
    for event in world.events:
        digest = hashlib.sha384(json.dumps(event.to_dict(), sort_keys=True,
                                           separators=(",", ":")).encode()).digest()
        register = hashlib.sha384(register + digest).digest()
    assert replay(list(world.events)) == register
    assert replay([]) == INITIAL == bytes(48)


def test_replay_is_order_and_content_sensitive(world: Any) -> None:
    events = list(world.events)
    base = replay(events)
    assert replay(events[::-1]) != base
    assert replay(events[:-1]) != base
    assert replay([*events, events[-1]]) != base
    for field, value in (("version", "1.2.4"), ("security_version", 4), ("signer", ""),
                         ("digest", "00" * 48), ("component", "x"), ("stage", "x")):
        changed = [dataclasses.replace(events[0], **{field: value}), *events[1:]]
        assert replay(changed) != base, field


def test_extend_chains(world: Any) -> None:
    e0, e1 = world.events[:2]
    assert replay([e0, e1]) == extend(extend(INITIAL, e0), e1)
    assert extend(INITIAL, e0) != extend(bytes([1]) + bytes(47), e0)


def test_os_state_digest() -> None:
    assert os_state_digest(True, True, "unsealed") == HEALTHY_OS_STATE
    expected = hashlib.sha384(b'{"data_volume":"unsealed","debug_disable":true,'
                              b'"huk_locked":true}').hexdigest()
    assert expected == HEALTHY_OS_STATE
    assert len({os_state_digest(d, h, "unsealed") for d in (True, False)
                for h in (True, False)}) == 4


def test_event_dict_round_trip_and_refusals(world: Any) -> None:
    event = world.events[0]
    assert Event.from_dict(event.to_dict(), "e") == event
    bad = [
        ("x", "e must be an object"),
        ({**event.to_dict(), "digest": "AB" * 48}, "digest must be 96 lowercase hex"),
        ({**event.to_dict(), "digest": "ab" * 47}, "digest must be 96 lowercase hex"),
        ({**event.to_dict(), "security_version": 65}, "between 0 and 64"),
        ({**event.to_dict(), "extra": 1}, "unknown field(s) extra"),
    ]
    for obj, fragment in bad:
        with pytest.raises(AttestationError) as info:
            Event.from_dict(obj, "e")
        assert fragment in str(info.value)


# ---------------------------------------------------------------------------- quote encoding


def test_quote_payload_round_trip(world: Any) -> None:
    q = world.quote()
    assert Quote.from_payload(q.to_payload()) == q
    assert Quote.from_payload(world.quote(nonce=b"").to_payload()).nonce == b""


@pytest.mark.parametrize(("change", "fragment"), [
    ({"type": "quotes"}, "type must be 'quote'"),
    ({"nonce": "abc"}, "'nonce' is not valid lowercase hex"),
    ({"nonce": "ab" * 65}, "longer than 128"),
    ({"register": "ab" * 47}, "must decode to 48 bytes"),
    ({"slot": "ab"}, "longer than 1"),
    ({"events": [{}] * 17}, "more than 16 items"),
    ({"events": [7]}, "quote.events[0] must be an object"),
])
def test_quote_payload_refusals(world: Any, change: dict[str, Any], fragment: str) -> None:
    doc = {**json.loads(world.quote().to_payload()), **change}
    with pytest.raises(AttestationError) as info:
        Quote.from_payload(canonical(doc))
    assert fragment in str(info.value)


def test_known_good_round_trip_and_merge(world: Any) -> None:
    kg = world.known_good
    assert KnownGood.from_json(kg.to_json()) == kg
    extra = KnownGood({"rootfs": frozenset({"ff" * 48}), "new": frozenset({"ee" * 48})})
    merged = kg.merged(extra)
    assert merged.components["rootfs"] == kg.components["rootfs"] | {"ff" * 48}
    assert merged.components["new"] == {"ee" * 48}
    assert merged.components["bl2"] == kg.components["bl2"]


# ---------------------------------------------------------------------------- verification


def test_good_quote_attests(world: Any) -> None:
    verdict = verify(world, sign_quote(world.quote(), world.device_key))
    assert verdict.serial == world.serial
    assert verdict.register == replay(list(world.events)).hex()
    assert verdict.slot == "a"
    assert verdict.events == world.events


def test_good_quote_with_several_known_good_versions(world: Any, new_events: Any) -> None:
    other = KnownGood({e.component: frozenset({e.digest}) for e in new_events("0.9")})
    verdict = verify(world, sign_quote(world.quote(), world.device_key),
                     known_good=other.merged(world.known_good))
    assert verdict.serial == world.serial


def test_wrong_nonce_refused(world: Any) -> None:
    good = sign_quote(world.quote(), world.device_key)
    for nonce in (os.urandom(32), world.nonce[:-1], world.nonce + b"\x00", b""):
        message = refused(world, good, nonce=nonce)
        assert "nonce is not the one issued" in message


def test_replayed_quote_for_an_old_nonce_refused(world: Any) -> None:
    old = sign_quote(world.quote(nonce=os.urandom(32)), world.device_key)
    assert "nonce" in refused(world, old)


@pytest.mark.parametrize("stage", STAGES)
def test_event_not_known_good_refused(world: Any, stage: str) -> None:
    component = COMPONENTS[stage]
    known = KnownGood({**world.known_good.components, component: frozenset({"00" * 48})})
    message = refused(world, sign_quote(world.quote(), world.device_key), known_good=known)
    event = next(e for e in world.events if e.stage == stage)
    assert message.startswith(f"{component} {event.version} (sha384 {event.digest[:16]}")
    assert message.endswith("is not a known-good measurement")


def test_unknown_component_digest_refused(world: Any) -> None:
    events = list(world.events)
    events[2] = dataclasses.replace(events[2], digest=os.urandom(48).hex())
    q = world.quote(events=tuple(events), register=replay(events))
    assert "not a known-good" in refused(world, sign_quote(q, world.device_key))


def test_known_good_is_per_component(world: Any) -> None:
    """A digest that is known-good for one component does not pass for another."""
    events = list(world.events)
    events[1] = dataclasses.replace(events[1], digest=events[0].digest)
    q = world.quote(events=tuple(events), register=replay(events))
    assert "kernel-bundle" in refused(world, sign_quote(q, world.device_key))


@pytest.mark.parametrize("order", [(1, 0, 2, 3), (0, 1, 3, 2), (3, 2, 1, 0)])
def test_reordered_events_refused(world: Any, order: tuple[int, ...]) -> None:
    """Reordered even with a register that replays correctly: the boot order is checked."""
    events = [world.events[i] for i in order]
    q = world.quote(events=tuple(events), register=replay(events))
    assert "boot stages" in refused(world, sign_quote(q, world.device_key))


@pytest.mark.parametrize("keep", [(), (0,), (0, 1, 2), (0, 1, 2, 3, 3)])
def test_incomplete_or_repeated_chain_refused(world: Any, keep: tuple[int, ...]) -> None:
    events = [world.events[i] for i in keep]
    q = world.quote(events=tuple(events), register=replay(events))
    assert "boot stages" in refused(world, sign_quote(q, world.device_key))


def test_wrong_component_for_stage_refused(world: Any) -> None:
    events = list(world.events)
    events[3] = dataclasses.replace(events[3], component="rootfs")
    q = world.quote(events=tuple(events), register=replay(events))
    assert refused(world, sign_quote(q, world.device_key)) == "stage os measured 'rootfs'"


def test_register_mismatch_refused(world: Any) -> None:
    events = list(world.events)
    for register in (os.urandom(48), INITIAL, replay(events[:3]), replay(events[::-1])):
        q = world.quote(register=register)
        message = refused(world, sign_quote(q, world.device_key))
        assert message == "event log does not replay to the quoted register"


def test_log_edited_after_the_fact_refused(world: Any) -> None:
    """A device that swaps in known-good events but keeps its real register is caught."""
    real = list(world.events)
    real[2] = dataclasses.replace(real[2], digest=os.urandom(48).hex())
    q = world.quote(events=world.events, register=replay(real))
    assert "does not replay" in refused(world, sign_quote(q, world.device_key))


def test_quote_signed_by_another_key_refused(world: Any) -> None:
    for key in (world.stranger, keys.generate(keys.Algorithm.ED25519), world.ca_key):
        message = refused(world, sign_quote(world.quote(), key))
        assert message == "quote refused: quote: not signed by any trusted key"


def test_quote_with_forged_keyid_refused(world: Any) -> None:
    signed = seal_envelope(QUOTE_TYPE, world.quote().to_payload(), [world.stranger])
    (signature,) = signed.signatures
    forged = Envelope(QUOTE_TYPE, signed.payload, (dataclasses.replace(
        signature, keyid=keys.keyid(world.device_key.public_key())),))
    assert "does not verify" in refused(world, forged.to_json())


def test_altered_quote_refused(world: Any) -> None:
    good = json.loads(sign_quote(world.quote(), world.device_key))
    doc = json.loads(world.quote().to_payload())
    doc["slot"] = "b"
    good["payload"] = base64.b64encode(canonical(doc)).decode()
    assert "does not verify" in refused(world, json.dumps(good).encode())


def test_quote_of_another_type_refused(world: Any) -> None:
    other = seal_envelope("application/vnd.edgeward.bl2+json", world.quote().to_payload(),
                          [world.device_key]).to_json()
    assert "payload type" in refused(world, other)


def test_malformed_quote_refused(world: Any) -> None:
    for data in (b"", b"{}", b"[]", b"\xff"):
        assert refused(world, data).startswith("quote refused: quote:")


def test_cert_from_another_ca_refused(world: Any, new_device: Any) -> None:
    key, cert = new_device(world.other_ca_key, world.other_ca_cert, world.serial)
    q = sign_quote(world.quote(), key)
    message = refused(world, q, CertificateError, device_cert=cert)
    assert message.startswith("device certificate refused")
    # ... and it passes once that CA is trusted: the refusal was about the CA alone
    assert verify(world, q, device_cert=cert, cas=[world.other_ca_cert]).serial == world.serial


def test_expired_cert_refused(world: Any) -> None:
    later = world.now + dt.timedelta(days=400)
    refused(world, sign_quote(world.quote(), world.device_key), CertificateError, now=later)


def test_quote_for_another_serial_refused(world: Any) -> None:
    q = world.quote(serial="gw-0002")
    message = refused(world, sign_quote(q, world.device_key))
    assert message == f"quote is for 'gw-0002', certificate for {world.serial!r}"


def test_another_devices_cert_refused(world: Any, new_device: Any) -> None:
    """Device B's genuine certificate does not vouch for device A's key."""
    _, other_cert = new_device(world.ca_key, world.ca_cert, world.serial)
    message = refused(world, sign_quote(world.quote(), world.device_key),
                      device_cert=other_cert)
    assert "not signed by any trusted key" in message


def test_ed25519_device_attests(world: Any, new_device: Any) -> None:
    key, cert = new_device(world.ca_key, world.ca_cert, "gw-ed",
                           keys.Algorithm.ED25519)
    verdict = verify(world, sign_quote(world.quote(serial="gw-ed"), key), device_cert=cert)
    assert verdict.serial == "gw-ed"


# ---------------------------------------------------------------------------- bugs found


def test_quote_with_lone_surrogate_is_an_attestation_error(world: Any) -> None:
    doc = json.loads(world.quote().to_payload())
    doc["events"][0]["version"] = "\ud800"
    payload = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()  # \ud800 escaped
    signed = seal_envelope(QUOTE_TYPE, payload, [world.device_key]).to_json()
    with pytest.raises(AttestationError):
        verify(world, signed)


def test_refusal_message_for_a_hostile_version_is_one_line(world: Any) -> None:
    events = list(world.events)
    events[2] = dataclasses.replace(events[2], version="6.6\nattestation OK: gw-0001",
                                    digest=os.urandom(48).hex())
    q = world.quote(events=tuple(events), register=replay(events))
    refused(world, sign_quote(q, world.device_key))
