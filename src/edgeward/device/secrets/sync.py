"""Applying what the fleet server delivered, and making the credentials apps ask for.

The server sends every current secret of the gateway's tenant, each sealed
(HPKE) to this gateway's identity key for exactly one app, name and version
(:func:`trust.secretbox.secret_info`); it sends nothing to a gateway whose
attestation is not good. What is delivered for an installed app is written
into its folder; what was on the gateway and is no longer delivered was
revoked and is deleted. An app whose secrets changed is told by a restart of
its daemons, which read ``/run/secrets`` as they start.

A credential an app's manifest asks for (``credentials = ["broker-password"]``)
is made here, once, at random, and reported to the server over mutual TLS
(where it is stored encrypted), so the customer can configure it on their side:
no two gateways share one.
"""

from __future__ import annotations

import base64
import binascii
import secrets as random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgeward.board.base import Board
from edgeward.device.apps import store, users
from edgeward.device.secrets import vault
from edgeward.errors import Error, InputError, StateError
from edgeward.trust import keys, sealing
from edgeward.trust.secretbox import secret_info
from edgeward.trust.targets import check_name


@dataclass
class Applied:
    added: list[tuple[str, str]] = field(default_factory=list)
    rotated: list[tuple[str, str]] = field(default_factory=list)
    revoked: list[tuple[str, str]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # what did not open: said, not fatal
    made: list[tuple[str, str]] = field(default_factory=list)  # credentials made here

    @property
    def apps(self) -> set[str]:
        """The apps to restart: their secrets or credentials changed."""
        return {app for app, _ in (*self.added, *self.rotated, *self.revoked, *self.made)}


def _entry(item: Any) -> tuple[str, str, int, bytes]:
    if not isinstance(item, dict):
        raise InputError("a delivered secret is not an object")
    app, name, version, sealed = (item.get(k) for k in ("app", "name", "version", "sealed"))
    if not (isinstance(app, str) and isinstance(name, str) and isinstance(sealed, str)
            and isinstance(version, int) and not isinstance(version, bool) and version > 0):
        raise InputError("a delivered secret lacks app, name, version or sealed")
    try:
        box = base64.b64decode(sealed, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InputError(f"secret {app}/{name}: sealed is not base64") from e
    return check_name(app, "app"), vault.check_name(name), version, box


def apply(board: Board, serial: str, key: keys.PrivateKey, delivered: list[Any]) -> Applied:
    """Make the installed apps' secrets exactly what was delivered."""
    installed = set(store.installed(board))
    # what a removed app had went with its folder: if it comes back, it is delivered again
    have = {app: names for app, names in vault.versions(board).items() if app in installed}
    done, seen = Applied(), set()
    for item in delivered:
        try:
            app, name, version, box = _entry(item)
            seen.add((app, name))
            if app not in installed or (have.get(app, {}).get(name) == version and
                                        vault.read(board, app, vault.SECRETS, name)):
                continue
            value = sealing.unseal(key, box, secret_info(serial, app, name, version))
        except Error as e:
            done.refused.append(e.message)
            continue
        vault.put(board, app, users.user_for(board, app), vault.SECRETS, name, value)
        (done.rotated if name in have.get(app, {}) else done.added).append((app, name))
        have.setdefault(app, {})[name] = version
    for app, names in have.items():
        for name in list(names):
            if (app, name) not in seen:
                vault.remove(board, app, vault.SECRETS, name)
                del names[name]
                done.revoked.append((app, name))
    vault.save_versions(board, have)
    return done


def ensure_credentials(board: Board, report: Callable[[str, str, str], None]
                       ) -> list[tuple[str, str]]:
    """Make what the installed apps' manifests ask for and is not yet made; report each
    to the server until it took it. Returns (app, name) of those made now."""
    made = []
    done = vault.reported(board)
    try:
        for app in store.installed(board):
            try:
                asked = store.current(board, app).manifest.credentials
            except StateError:
                continue  # not mounted again yet after a reboot: at the next round
            for name in asked:
                value = vault.read(board, app, vault.CREDENTIALS, name)
                if value is None:
                    value = random.token_urlsafe(24).encode()
                    vault.put(board, app, users.user_for(board, app), vault.CREDENTIALS,
                              name, value)
                    made.append((app, name))
                if f"{app}/{name}" not in done:
                    report(app, name, value.decode())
                    done.add(f"{app}/{name}")
    finally:
        vault.save_reported(board, done)
    return made
