"""Accounts: empty passwords, known default passwords, a usable root password.

Each hash in ``/etc/shadow`` is checked against a short list of defaults that ship
on devices (and that botnets try first) with the hash's own scheme, through libpass
(passlib's maintained fork): MD5-, SHA-256- and SHA-512-crypt and traditional DES.
A scheme it cannot check (yescrypt, bcrypt) is reported as unchecked rather than
passed. A locked account (``*``, ``!``, ``!!`` ...) has no password to guess.
"""

from __future__ import annotations

from collections.abc import Iterable

from passlib.context import CryptContext

from edgeward.device.hardening.finding import Finding

# Vendor and distribution defaults, and the top of the lists IoT botnets (Mirai and
# its descendants) try; the account's own name is tried too.
DEFAULT_PASSWORDS = (
    "root", "admin", "password", "1234", "12345", "123456", "12345678", "raspberry",
    "ubnt", "toor", "changeme", "default", "guest", "pass", "support", "user",
    "admin123", "system", "service", "alpine", "vizxv", "xc3511", "anko",
    "7ujMko0admin", "888888", "666666", "54321", "hi3518", "dreambox",
)
SCHEMES = CryptContext(schemes=["sha512_crypt", "sha256_crypt", "md5_crypt", "des_crypt"])
MAX_ROUNDS = 100_000  # dearer than this (up to 999,999,999 rounds) is left unchecked
LOCKED_PREFIXES = ("!", "*")


def shadow_entries(text: str) -> list[tuple[int, str, str]]:
    """``(line, account, password field)`` for each account's line (not comments, nor
    NIS ``+``/``-`` inclusions, which hold no password)."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split(":")
        if len(fields) >= 2 and fields[0] and not line.startswith(("#", "+", "-")):
            entries.append((number, fields[0], fields[1]))
    return entries


def _checkable(hashed: str) -> bool:
    scheme = SCHEMES.identify(hashed)
    if scheme is None:
        return False
    rounds = getattr(SCHEMES.handler(scheme).from_string(hashed), "rounds", 0) or 0
    return int(rounds) <= MAX_ROUNDS


def matches_default(account: str, hashed: str,
                    candidates: Iterable[str] = DEFAULT_PASSWORDS) -> bool | None:
    """Whether ``hashed`` is one of the defaults (or the account's name); None if its
    scheme cannot be checked here."""
    try:
        if not _checkable(hashed):
            return None
        return any(SCHEMES.verify(word, hashed) for word in (*candidates, account))
    except ValueError:  # malformed for its scheme: no password can match it
        return None


def shadow(text: str, path: str = "/etc/shadow") -> list[Finding]:
    found = []
    for number, account, field in shadow_entries(text):
        where = f"{path} line {number}: account {account}"
        if field == "":
            found.append(Finding(
                "accounts.empty-password", "high", f"account {account} has an empty password",
                where, f"Lock it (passwd -l {account}) or set a per-device credential: an "
                       "empty password logs in with nothing."))
            continue
        if field.startswith(LOCKED_PREFIXES):
            continue
        verdict = matches_default(account, field)
        if verdict:
            found.append(Finding(
                "accounts.default-password", "high",
                f"account {account} has a well-known default password", where,
                f"Lock it (passwd -l {account}) or give each device its own credential "
                "(never one shared by a fleet); default passwords are the first thing "
                "scanners try."))
        elif verdict is None:
            found.append(Finding(
                "accounts.unchecked-hash", "low",
                f"account {account}'s password could not be checked against the defaults",
                f"{where}: hash scheme {field.split('$')[1] if field.startswith('$') else '?'}"
                " is not one this audit verifies", "Make sure it is not a default; better, "
                f"lock it (passwd -l {account}) if nobody logs in with it."))
        if account == "root":
            found.append(Finding(
                "accounts.root-password", "low", "root can log in with a password", where,
                "Lock root (passwd -l root) and reach the gateway through the fleet "
                "server, not a root login."))
    return found


def passwd(text: str, path: str = "/etc/passwd") -> list[Finding]:
    """An empty password field in ``/etc/passwd`` (not ``x``): no password at all."""
    return [Finding("accounts.empty-password", "high",
                    f"account {account} has an empty password", f"{path} line {number}: "
                    f"account {account}", f"Put x in its password field and lock it "
                    f"(passwd -l {account}).")
            for number, account, field in shadow_entries(text) if field == ""]
