"""SSH server settings: the usual hardening set (CIS-style), judged on the effective
configuration (:mod:`.sshd_config`).

An unset keyword is judged by OpenSSH's default, so it is flagged only where that
default is itself unsafe (password and keyboard-interactive logins, TCP forwarding,
no idle timeout). A value set inside a Match block is judged on its own and
reported with the block it applies under.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from edgeward.device.hardening.finding import Finding
from edgeward.device.hardening.sshd_config import Setting, SshdConfig

WEAK_CIPHERS = frozenset({"3des-cbc", "aes128-cbc", "aes192-cbc", "aes256-cbc",
                          "blowfish-cbc", "cast128-cbc", "arcfour", "arcfour128",
                          "arcfour256", "rijndael-cbc@lysator.liu.se"})
WEAK_MACS = frozenset({"hmac-md5", "hmac-md5-96", "hmac-sha1", "hmac-sha1-96", "hmac-ripemd160",
                       "hmac-ripemd160@openssh.com", "umac-64@openssh.com",
                       "hmac-md5-etm@openssh.com", "hmac-md5-96-etm@openssh.com",
                       "hmac-sha1-etm@openssh.com", "hmac-sha1-96-etm@openssh.com",
                       "hmac-ripemd160-etm@openssh.com", "umac-64-etm@openssh.com"})
WEAK_KEX = frozenset({"diffie-hellman-group1-sha1", "diffie-hellman-group14-sha1",
                      "diffie-hellman-group-exchange-sha1", "gss-gex-sha1-",
                      "gss-group1-sha1-", "gss-group14-sha1-"})
WEAK_SIGNATURES = frozenset({"ssh-dss", "ssh-rsa", "ssh-dss-cert-v01@openssh.com",
                             "ssh-rsa-cert-v01@openssh.com"})


def _yes(value: str) -> bool:
    return value.lower() == "yes"


def seconds(value: str) -> int | None:
    """sshd's time format: ``90``, ``5m``, ``1h30m`` (None if it is not one)."""
    parts = re.fullmatch(r"(?:\d+[sSmMhHdDwW]?)+", value)
    if parts is None:
        return None
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    return sum(int(n) * unit[u.lower()] for n, u in re.findall(r"(\d+)([a-zA-Z]?)", value))


def _weak(names: frozenset[str]) -> Callable[[str], bool]:
    def bad(value: str) -> bool:
        if value.startswith("-"):
            return False  # removing from the defaults
        listed = value.lstrip("+^").lower().split(",")
        return any(a in names or any(a.startswith(w) for w in names if w.endswith("-"))
                   for a in listed)
    return bad


@dataclass(frozen=True)
class Rule:
    check: str
    keywords: tuple[str, ...]  # the keyword as documented, then its older names
    default: str  # OpenSSH's, when unset
    bad: Callable[[str], bool]
    severity: str
    title: str
    advice: str


RULES = (
    Rule("ssh.root-login", ("PermitRootLogin",), "prohibit-password", _yes, "high",
         "SSH lets root log in, with a password too", "PermitRootLogin no"),
    Rule("ssh.permit-empty", ("PermitEmptyPasswords",), "no", _yes, "high",
         "SSH accepts empty passwords", "PermitEmptyPasswords no"),
    Rule("ssh.protocol", ("Protocol",), "2", lambda v: "1" in v.split(","), "high",
         "SSH protocol 1 is allowed", "Protocol 2"),
    Rule("ssh.password-auth", ("PasswordAuthentication",), "yes", _yes, "medium",
         "SSH accepts password logins", "PasswordAuthentication no"),
    Rule("ssh.hostbased", ("HostbasedAuthentication",), "no", _yes, "medium",
         "SSH trusts other hosts' word for a user", "HostbasedAuthentication no"),
    Rule("ssh.ignore-rhosts", ("IgnoreRhosts",), "yes", lambda v: v.lower() == "no",
         "medium", "SSH reads .rhosts files", "IgnoreRhosts yes"),
    Rule("ssh.strict-modes", ("StrictModes",), "yes", lambda v: v.lower() == "no", "medium",
         "SSH does not check the permissions of users' key files", "StrictModes yes"),
    Rule("ssh.user-environment", ("PermitUserEnvironment",), "no",
         lambda v: v.lower() != "no", "medium",
         "SSH lets users set environment variables for their session",
         "PermitUserEnvironment no"),
    Rule("ssh.gateway-ports", ("GatewayPorts",), "no", lambda v: v.lower() != "no", "medium",
         "SSH lets forwarded ports listen on the network", "GatewayPorts no"),
    Rule("ssh.tunnel", ("PermitTunnel",), "no", lambda v: v.lower() != "no", "medium",
         "SSH lets users open tun/tap tunnels", "PermitTunnel no"),
    Rule("ssh.ciphers", ("Ciphers",), "", _weak(WEAK_CIPHERS), "medium",
         "SSH allows weak ciphers (CBC, RC4, 3DES)",
         "Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,"
         "aes256-ctr,aes192-ctr,aes128-ctr"),
    Rule("ssh.macs", ("MACs",), "", _weak(WEAK_MACS), "medium",
         "SSH allows weak MACs (MD5, SHA-1, 64-bit tags)",
         "MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,"
         "umac-128-etm@openssh.com"),
    Rule("ssh.kex", ("KexAlgorithms",), "", _weak(WEAK_KEX), "medium",
         "SSH allows weak key exchanges (SHA-1, 1024-bit groups)",
         "KexAlgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256,"
         "diffie-hellman-group16-sha512"),
    Rule("ssh.signature-algorithms", ("PubkeyAcceptedAlgorithms", "PubkeyAcceptedKeyTypes",
                                      "HostKeyAlgorithms", "CASignatureAlgorithms"),
         "", _weak(WEAK_SIGNATURES), "low", "SSH accepts SHA-1 RSA or DSA signatures",
         "a list without ssh-rsa and ssh-dss (rsa-sha2-256 and rsa-sha2-512 replace ssh-rsa)"),
    Rule("ssh.tcp-forwarding", ("AllowTcpForwarding",), "yes", lambda v: v.lower() != "no",
         "low", "SSH users can forward TCP into the gateway's networks",
         "AllowTcpForwarding no"),
    Rule("ssh.x11", ("X11Forwarding",), "no", _yes, "low", "SSH forwards X11",
         "X11Forwarding no"),
    Rule("ssh.max-auth-tries", ("MaxAuthTries",), "6",
         lambda v: not v.isdigit() or int(v) > 6, "low",
         "SSH allows many password guesses per connection", "MaxAuthTries 4"),
    Rule("ssh.idle-timeout", ("ClientAliveInterval",), "0",
         lambda v: (seconds(v) or 0) == 0, "low", "SSH sessions never time out when idle",
         "ClientAliveInterval 300"),
    Rule("ssh.login-grace", ("LoginGraceTime",), "120", lambda v: (seconds(v) or 0) == 0,
         "low", "SSH waits forever for a login", "LoginGraceTime 60"),
    Rule("ssh.log-level", ("LogLevel",), "INFO", lambda v: v.upper() in ("QUIET", "FATAL"),
         "low", "SSH logs too little to see attacks", "LogLevel VERBOSE"),
)


def _found(rule: Rule, setting: Setting | None, config: SshdConfig) -> Finding:
    if setting is None:
        detail = (f"{config.path}: {rule.keywords[0]} not set (OpenSSH's default is "
                  f"{rule.default})")
        advice = (f"Add '{rule.advice}' to {config.path}, above any Match block, and "
                  "reload sshd.")
    else:
        detail = f"{setting.where}{setting.scope()}: {setting.spelt} {setting.value}"
        block = f" in its Match {setting.match} block" if setting.match else ""
        advice = (f"Make it '{rule.advice}' in {setting.file}{block} (sshd takes the "
                  "first value it reads), and reload sshd.")
    return Finding(rule.check, rule.severity, rule.title, detail, advice)


def check(config: SshdConfig) -> list[Finding]:
    found = []
    for rule in RULES:
        keywords = tuple(k.lower() for k in rule.keywords)
        effective = config.first(*keywords)
        value = effective.value if effective is not None else rule.default
        if value and rule.bad(value):
            found.append(_found(rule, effective, config))
        found += [_found(rule, s, config) for s in config.scoped(*keywords)
                  if rule.bad(s.value)]
    found += _keyboard_interactive(config)
    return found


def _keyboard_interactive(config: SshdConfig) -> list[Finding]:
    """Keyboard-interactive logins ask PAM, which asks for the password: with UsePAM
    yes they are password logins under another name (OpenSSH's default is yes)."""
    pam = config.first("usepam")
    if pam is None or not _yes(pam.value):
        return []
    keywords = ("kbdinteractiveauthentication", "challengeresponseauthentication")
    rule = Rule("ssh.kbd-interactive",
                ("KbdInteractiveAuthentication", "ChallengeResponseAuthentication"), "yes",
                _yes, "medium", "SSH accepts passwords through keyboard-interactive (PAM)",
                "KbdInteractiveAuthentication no")
    effective = config.first(*keywords)
    found = []
    if effective is None or _yes(effective.value):
        found.append(_found(rule, effective, config))
    return found + [_found(rule, s, config) for s in config.scoped(*keywords)
                    if _yes(s.value)]
