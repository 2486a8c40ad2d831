"""Fleet audits: what the server can tell about its gateways that no gateway can about
itself. Pure functions of plain facts and a reference time ``now``; the database side
that gathers the facts is :mod:`.fleetfacts`.

- **identity**: one certificate used by two devices (the registry's ``cloned-identity``
  alert: boot ids alternate; ``identity-conflict``: a second certificate for a serial),
  and one key pair (SubjectPublicKeyInfo) certified for two gateways;
- **certificates** expired or expiring within ``expiring_within``, and revoked ones still
  presented to the server after their revocation;
- **patches**: a gateway whose running release has a lower security version than the
  newest release of its channel, with why it does not have it (pinned, held back by a
  rollout, manual updates) and what to do;
- **attestation** that failed, went stale while the gateway still reports, or never
  happened; and gateways that stopped reporting at all.

Every finding names the command that acts on it (``edgeward fleet ...``,
``edgeward release rollout ...``). A key shared with another tenant's gateway is said to
be so without naming that gateway: tenants never learn each other's serials.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edgeward.server.services import desired, releases
from edgeward.server.services.desired import Candidate, Gate, Policy

SEVERITIES = ("high", "medium", "low")
IDENTITY_ALERTS = {"cloned-identity": "identity.cloned", "identity-conflict": "identity.conflict"}
EXPIRING_WITHIN = dt.timedelta(days=30)
SILENT_AFTER = dt.timedelta(hours=1)  # heartbeats come every 30 s, backed off to 5 min at most
# the agent attests every 12 h: two missed (plus an hour's grace) is the registry's "stale"
ATTESTATION_STALE = dt.timedelta(hours=25)


@dataclass(frozen=True)
class Certificate:
    """What the audits need of a certificate (``None`` fields: it did not parse)."""

    key_sha256: str | None
    not_after: dt.datetime | None


@dataclass(frozen=True)
class GatewayFacts:
    id: int
    serial: str
    model: str
    tenant_id: int | None
    status: str  # enrolled, revoked
    cert_sha384: str
    cert_pem: str
    attestation: str  # unknown, attested, failed
    attestation_detail: str
    attested_at: dt.datetime | None
    enrolled_at: dt.datetime
    last_seen_at: dt.datetime | None
    versions: dict[str, str] = field(default_factory=dict)
    policy: Policy = field(default_factory=Policy)
    revoked_at: dt.datetime | None = None


@dataclass(frozen=True)
class AlertFacts:
    gateway_id: int
    kind: str
    at: dt.datetime
    detail: str


@dataclass(frozen=True)
class Finding:
    gateway: str
    check: str
    severity: str
    title: str
    detail: str
    advice: str


@lru_cache(maxsize=65536)
def certificate(cert_pem: str) -> Certificate:
    """The key hash and expiry of a PEM certificate (cached: a PEM never changes)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    except (ValueError, TypeError, x509.InvalidVersion):
        return Certificate(None, None)
    return Certificate(hashlib.sha256(spki).hexdigest(), cert.not_valid_after_utc)


def _day(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _ago(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"


def _live(gateways: Iterable[GatewayFacts]) -> list[GatewayFacts]:
    return [g for g in gateways if g.status != "revoked"]


# -- identity ---------------------------------------------------------------------------


def identity(mine: Sequence[GatewayFacts], everyone: Sequence[GatewayFacts],
             alerts: Sequence[AlertFacts]) -> list[Finding]:
    """Open identity alerts of ``mine``, and keys certified for more than one gateway
    (compared across ``everyone``, whatever their tenant)."""
    found: list[Finding] = []
    by_id = {g.id: g for g in _live(mine)}
    seen: set[tuple[int, str]] = set()
    for alert in sorted(alerts, key=lambda a: a.at, reverse=True):
        gateway, check = by_id.get(alert.gateway_id), IDENTITY_ALERTS.get(alert.kind)
        if gateway is None or check is None or (gateway.id, check) in seen:
            continue
        seen.add((gateway.id, check))
        revoke = f"`edgeward fleet revoke {gateway.serial}`"
        if check == "identity.cloned":
            found.append(Finding(
                gateway.serial, check, "high", "one certificate is used by two devices",
                f"{alert.detail} (alert of {_day(alert.at)})",
                f"The device key has been copied. Revoke the identity with {revoke}, find "
                "and recover the genuine device, and replace it with a newly provisioned "
                "one (`edgeward factory provision`): a copied key cannot be trusted again."))
        else:
            found.append(Finding(
                gateway.serial, check, "high", "another certificate claimed this serial",
                f"{alert.detail} (alert of {_day(alert.at)})",
                "A forged or cloned identity tried to enrol under this serial and was "
                "refused. Check the audit log (`edgeward fleet audit`) for where it came "
                f"from; if this gateway's key may have leaked, revoke it with {revoke}."))
    holders: dict[str, list[GatewayFacts]] = {}
    for gateway in everyone:
        key = certificate(gateway.cert_pem).key_sha256
        if key is not None:
            holders.setdefault(key, []).append(gateway)
    for gateway in _live(mine):
        key = certificate(gateway.cert_pem).key_sha256
        others = [g for g in holders.get(key or "", ()) if g.id != gateway.id]
        if not others:
            continue
        named = [g.serial + (" (revoked)" if g.status == "revoked" else "")
                 for g in others if g.tenant_id == gateway.tenant_id]
        hidden = len(others) - len(named)
        who = ", ".join(named + ([f"{hidden} gateway(s) of another tenant"] if hidden else []))
        found.append(Finding(
            gateway.serial, "identity.shared-key", "high",
            "one key pair is certified for two gateways",
            f"the public key of {gateway.serial} (SHA-256 of its SubjectPublicKeyInfo "
            f"{key[:16] if key else ''}…) is also the key of {who}",
            "Device keys are made on the device and never leave it: a shared key means a "
            "key was copied or a factory station reused one. Revoke every gateway that holds "
            f"it (`edgeward fleet revoke {gateway.serial}`, and the others), then "
            "re-provision them with fresh keys (`edgeward factory provision`)."))
    return found


# -- certificates -----------------------------------------------------------------------


def certificates(mine: Sequence[GatewayFacts], now: dt.datetime,
                 expiring_within: dt.timedelta = EXPIRING_WITHIN) -> list[Finding]:
    """Certificates expired, or expiring within ``expiring_within``; unreadable ones."""
    found: list[Finding] = []
    for gateway in _live(mine):
        not_after = certificate(gateway.cert_pem).not_after
        replace = ("edgeward has no renewal in the field: provision a replacement under a new "
                   "serial (`edgeward factory provision`), move the gateway's group and apps "
                   "to it, then revoke this one (`edgeward fleet revoke "
                   f"{gateway.serial}`).")
        if not_after is None:
            found.append(Finding(gateway.serial, "certificate.unreadable", "medium",
                                 "the stored certificate does not parse",
                                 f"certificate {gateway.cert_sha384[:16]}… of {gateway.serial}"
                                 " is not a readable X.509 certificate",
                                 "Compare it with the factory's record of the gateway; "
                                 f"{replace}"))
        elif not_after <= now:
            found.append(Finding(
                gateway.serial, "certificate.expired", "high", "the certificate has expired",
                f"the certificate of {gateway.serial} expired on {_day(not_after)}: the "
                "server refuses it, so the gateway can no longer report, attest or update",
                replace))
        elif not_after - now <= expiring_within:
            found.append(Finding(
                gateway.serial, "certificate.expiring", "medium",
                "the certificate expires soon",
                f"the certificate of {gateway.serial} expires on {_day(not_after)}, in "
                f"{_ago(not_after - now)}; after that the server refuses the gateway",
                f"Before {_day(not_after)}: {replace}"))
    return found


def revoked_seen(mine: Sequence[GatewayFacts]) -> list[Finding]:
    """Revoked gateways whose certificate was presented after their revocation (the time
    of which the audit log tells; without it, nothing is concluded)."""
    found: list[Finding] = []
    for gateway in mine:
        if (gateway.status != "revoked" or gateway.last_seen_at is None
                or gateway.revoked_at is None or gateway.last_seen_at <= gateway.revoked_at):
            continue
        found.append(Finding(
            gateway.serial, "certificate.revoked-seen", "high",
            "a revoked certificate is still in use",
            f"{gateway.serial} was revoked on {_day(gateway.revoked_at)} but its certificate "
            "was presented to the "
            f"server on {_day(gateway.last_seen_at)}; every such request is refused",
            "Something still holds this gateway's key: if the device was retired, it was not "
            "wiped (or its key was copied). Find it from the alerts (`edgeward fleet "
            "alerts`) and take it off the network; the server keeps refusing it."))
    return found


# -- patches ----------------------------------------------------------------------------


def _why_behind(gateway: GatewayFacts, newest: Candidate, candidates: Sequence[Candidate],
                gates: Sequence[Gate]) -> str:
    """What keeps ``newest`` from the gateway, and what to do about it."""
    policy, group = gateway.policy, (gateway.policy.group or "").partition("/")[2]
    if any(c.version == policy.pinned_version and not c.yanked for c in candidates):
        return (f"Its group {group} is pinned to {policy.pinned_version}: pin it to "
                f"{newest.version} or follow the channel again (`edgeward fleet groups set "
                f"{group} --unpin`).")
    device = desired.Device(gateway.serial, gateway.versions.get("rootfs"))
    choice = desired.choose(device, policy, candidates, gates)
    offered = next((c for c in candidates if c.version == choice.version), None)
    if offered is not None and offered.security_version >= newest.security_version:
        if not policy.auto_update:
            return (f"{offered.version} is offered to it, but its group {group} is manual: "
                    f"make it automatic (`edgeward fleet groups set {group} --auto`).")
        window = f" (its update window is {policy.window} UTC)" if policy.window else ""
        return (f"{offered.version} is offered to it{window} and not installed yet: look at "
                f"its update state on its dashboard page (/gateways/{gateway.serial}) for "
                "why its attempts failed.")
    gate = desired.governing(gates, newest.version)
    if gate is None:
        return (f"No release of security version {newest.security_version} is available to "
                "it: publish one on its channel.")
    if gate.state == "aborted":
        return (f"Rollout {gate.id} of {newest.version} was aborted: the platform must start "
                f"a new one (`edgeward release rollout create {gateway.model} "
                f"{newest.version} --stage ...`).")
    if gate.state in ("paused", "halted"):
        return (f"Rollout {gate.id} of {newest.version} is {gate.state} before reaching it: "
                f"look at why (`edgeward release rollout show {gate.id}`), then resume it "
                f"(`edgeward release rollout resume {gate.id}`, platform admin).")
    return (f"Rollout {gate.id} of {newest.version} has not reached it yet (stage "
            f"{gate.current_stage + 1} of {len(gate.stages)}, `edgeward release rollout show "
            f"{gate.id}`): it is offered when its stage comes; to patch it sooner, put it in a "
            f"group an earlier stage names (`edgeward fleet groups assign GROUP "
            f"{gateway.serial}`).")


def patches(mine: Sequence[GatewayFacts], published: dict[str, Sequence[Candidate]],
            rollouts: dict[str, Sequence[Gate]]) -> list[Finding]:
    """Gateways that run a release of a lower security version than the newest release
    their channel may take (``published`` releases and ``rollouts`` by model)."""
    found: list[Finding] = []
    for gateway in _live(mine):
        candidates = published.get(gateway.model, ())
        known = {c.version: c for c in candidates}
        running = known.get(gateway.versions.get("rootfs", ""))
        if running is None:
            continue  # not a published release: nothing to compare with
        allowed = releases.rank(gateway.policy.channel)
        channel = [c for c in candidates if not c.yanked
                   and releases.rank(c.channel) <= allowed]
        if not channel:
            continue
        newest = max(channel, key=lambda c: (c.security_version, c.seq))
        if newest.security_version <= running.security_version:
            continue
        found.append(Finding(
            gateway.serial, "patches.behind", "high", "behind on security patches",
            f"{gateway.serial} runs {running.version} (security version "
            f"{running.security_version}); {newest.version} on channel "
            f"{gateway.policy.channel} has security version {newest.security_version}",
            _why_behind(gateway, newest, candidates, rollouts.get(gateway.model, ()))))
    return found


# -- attestation and silence ------------------------------------------------------------


def attestation(mine: Sequence[GatewayFacts], now: dt.datetime,
                stale_after: dt.timedelta = ATTESTATION_STALE,
                silent_after: dt.timedelta = SILENT_AFTER) -> list[Finding]:
    """Gateways that report but do not attest (failed, stale or never), and gateways
    that stopped reporting."""
    found: list[Finding] = []
    for g in _live(mine):
        show = f"`edgeward fleet show {g.serial}`"
        if g.last_seen_at is None or now - g.last_seen_at > silent_after:
            last = f"last on {_day(g.last_seen_at)}" if g.last_seen_at else "never"
            quiet = f", {_ago(now - g.last_seen_at)} ago" if g.last_seen_at else ""
            found.append(Finding(
                g.serial, "reporting.stopped", "medium", "the gateway stopped reporting",
                f"{g.serial} checked in {last}{quiet}",
                "Check its power and network. If it is gone for good (stolen, retired), "
                f"revoke it (`edgeward fleet revoke {g.serial}`) so its key opens nothing."))
            continue
        if g.attestation == "failed":
            found.append(Finding(
                g.serial, "attestation.failed", "high", "its boot chain did not attest",
                f"the last quote of {g.serial} failed: {g.attestation_detail or 'no reason'}",
                "It may run software that was not signed for it: secrets are withheld "
                f"until it attests again. Look at its events and boot ({show}, `edgeward "
                f"fleet events --gateway {g.serial}`); if it does not recover, revoke it "
                f"(`edgeward fleet revoke {g.serial}`)."))
        elif g.attested_at is not None and now - g.attested_at > stale_after:
            found.append(Finding(
                g.serial, "attestation.stale", "medium", "the gateway stopped attesting",
                f"{g.serial} reports but last attested on {_day(g.attested_at)}, "
                f"{_ago(now - g.attested_at)} ago (it should every 12 hours)",
                "An agent that reports but no longer attests may have been tampered with, "
                f"or cannot reach its TPM: look at its state and logs ({show}); secrets "
                "are withheld until it attests again."))
        elif g.attested_at is None and now - g.enrolled_at > stale_after:
            found.append(Finding(
                g.serial, "attestation.never", "medium", "the gateway has never attested",
                f"{g.serial} was enrolled on {_day(g.enrolled_at)} and reports, but never "
                "sent a quote that verified",
                f"Its agent does not attest: check its agent version and logs ({show})."))
    return found


def audit(mine: Sequence[GatewayFacts], everyone: Sequence[GatewayFacts],
          alerts: Sequence[AlertFacts], published: dict[str, Sequence[Candidate]],
          rollouts: dict[str, Sequence[Gate]], now: dt.datetime,
          expiring_within: dt.timedelta = EXPIRING_WITHIN) -> list[Finding]:
    """Every fleet audit over ``mine``, most severe first."""
    found = (identity(mine, everyone, alerts) + certificates(mine, now, expiring_within)
             + revoked_seen(mine) + patches(mine, published, rollouts)
             + attestation(mine, now))
    return sorted(found, key=lambda f: (SEVERITIES.index(f.severity), f.gateway, f.check))
