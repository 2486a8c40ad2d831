"""Reading ``sshd_config`` as sshd does (pure): keywords case-insensitive, the first value
of a keyword wins, ``Include`` (glob patterns, relative to ``/etc/ssh``) read in place
and in lexical order, ``Match`` blocks kept apart with their criteria.

A ``Match`` opened in an included file ends with that file; an ``Include`` inside a
``Match`` block is conditional like the rest of the block.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

MAIN = "/etc/ssh/sshd_config"
BASE = "/etc/ssh"
MAX_DEPTH = 16  # sshd's own limit on nested Includes
LINE = re.compile(r"^(\S+?)(?:\s*=\s*|\s+)(.*)$")


@dataclass(frozen=True)
class Setting:
    keyword: str  # lower case
    value: str
    where: str  # "path line N"
    match: str = ""  # the Match criteria it applies under; "" for every connection
    spelt: str = ""  # the keyword as the file spells it

    @property
    def file(self) -> str:
        return self.where.rsplit(" line ", 1)[0]

    def scope(self) -> str:
        return f" (under Match {self.match})" if self.match else ""


@dataclass(frozen=True)
class SshdConfig:
    settings: tuple[Setting, ...]
    path: str = MAIN

    def first(self, *keywords: str) -> Setting | None:
        """The value sshd uses for every connection: the first one outside Match blocks
        (``keywords``: a keyword and its older aliases)."""
        return next((s for s in self.settings if s.keyword in keywords and not s.match),
                    None)

    def scoped(self, *keywords: str) -> list[Setting]:
        """Values that apply only to connections matching a Match block."""
        return [s for s in self.settings if s.keyword in keywords and s.match]


def _lines(text: str) -> Iterable[tuple[int, str, str, str]]:
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        found = LINE.match(line)
        if found is None:
            continue  # a keyword without a value: sshd refuses to start on it
        value = re.split(r"\s+#", found.group(2), maxsplit=1)[0].strip()
        yield number, found.group(1).lower(), value, found.group(1)


def _absolute(pattern: str) -> str:
    return posixpath.normpath(posixpath.join(BASE, pattern.strip('"')))


def include_patterns(text: str) -> list[str]:
    """The absolute glob patterns ``text`` includes."""
    return [_absolute(p) for _, keyword, value, _ in _lines(text) if keyword == "include"
            for p in value.split()]


def expand(pattern: str, available: Iterable[str]) -> list[str]:
    """The paths among ``available`` that ``pattern`` matches, sorted as glob(3) sorts
    them (wildcards match within one path component)."""
    directory, name = posixpath.split(pattern)
    return sorted(p for p in set(available) if posixpath.dirname(p) == directory
                  and fnmatch.fnmatchcase(posixpath.basename(p), name))


def parse(text: str, includes: Mapping[str, str] | None = None, path: str = MAIN
          ) -> SshdConfig:
    """``text`` is ``path``'s content; ``includes`` the files Include may name, by path."""
    files = dict(includes or {})
    out: list[Setting] = []

    def read(content: str, name: str, match: str, depth: int) -> None:
        for number, keyword, value, spelt in _lines(content):
            where = f"{name} line {number}"
            if keyword == "match":
                match = value or "?"
            elif keyword == "include":
                if depth >= MAX_DEPTH:
                    continue
                for pattern in value.split():
                    for included in expand(_absolute(pattern), files):
                        read(files[included], included, match, depth + 1)
            else:
                out.append(Setting(keyword, value, where, match, spelt))

    read(text, path, "", 0)
    return SshdConfig(tuple(out), path)
