"""Hard-coded credentials in an app's files: found before the image is built.

Credentials reach a gateway from the fleet server, per device (issue 7's secrets
service), never inside an image every gateway shares. This scan looks, in every
file, for private keys (PEM, OpenSSH, PuTTY), well-known token formats, and, in
configuration files, a password, secret, token or key given a literal value.
A value that only points elsewhere (``${VAR}``, ``env:``, a file under
``/run/secrets``) is fine, as is the manifest's list of ``credentials`` the
gateway makes for the app. Findings name the file and line, never the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_SCAN = 64 << 20  # bytes read of one file
_EVERYWHERE = [
    (re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )?PRIVATE KEY-----"), "a private key (PEM)"),
    (re.compile(rb"-----BEGIN OPENSSH PRIVATE KEY-----"), "an OpenSSH private key"),
    (re.compile(rb"PuTTY-User-Key-File-"), "a PuTTY private key"),
    (re.compile(rb"\bAKIA[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(rb"\bgh[pousr]_[A-Za-z0-9]{36}\b"), "a GitHub token"),
    (re.compile(rb"\bxox[abprs]-[A-Za-z0-9-]{10,}"), "a Slack token"),
    (re.compile(rb"\bewt_[A-Za-z0-9_-]{20,}"), "an edgeward API token"),
    (re.compile(rb"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
     "a JSON web token"),
]
_CONFIG_SUFFIXES = {".conf", ".cfg", ".ini", ".env", ".json", ".yaml", ".yml", ".toml",
                    ".properties", ".xml", ".cnf", ""}
_ASSIGNMENT = re.compile(
    rb"""(?ix)
    (?P<key>["']?[a-z0-9_.-]*(?:pass(?:word|wd|phrase)?|secret|token|api[_-]?key|
        private[_-]?key|credentials?|auth[_-]?key)[a-z0-9_.-]*["']?)
    \s*[:=]\s*
    (?P<value>"[^"\n]*"|'[^'\n]*'|[^\s#;,}\]]+)""")
_POINTERS = re.compile(rb"""(?x)^["']?(\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|env:.*|file:.*|
                            /run/secrets/.*|/run/credentials/.*|/data/.*secrets.*|<[^>]*>)["']?$""")
_NOT_A_VALUE = {b"", b'""', b"''", b"null", b"none", b"true", b"false", b"~"}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def scan_bytes(path: str, data: bytes) -> list[Finding]:
    found: list[Finding] = []
    for pattern, what in _EVERYWHERE:
        for match in pattern.finditer(data):
            found.append(Finding(path, data.count(b"\n", 0, match.start()) + 1, what))
    if Path(path).suffix.lower() in _CONFIG_SUFFIXES and b"\0" not in data[:8192]:
        for number, line in enumerate(data.splitlines(), 1):
            if line.lstrip().startswith((b"#", b";", b"//")):
                continue
            for match in _ASSIGNMENT.finditer(line):
                value = match.group("value").strip()
                if value.lower() in _NOT_A_VALUE or _POINTERS.match(value):
                    continue
                key = match.group("key").decode(errors="replace").strip("\"'")
                if path == "app.toml" and key == "credentials" and value.startswith(b"["):
                    continue  # the names of credentials the gateway makes, not values
                found.append(Finding(path, number, f"a literal value for {key!r}"))
    return found


def scan_tree(root: Path) -> Iterator[Finding]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as f:
                data = f.read(MAX_SCAN)
            yield from scan_bytes(str(path.relative_to(root)), data)
