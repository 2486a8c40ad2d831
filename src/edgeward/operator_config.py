"""The operator CLI's saved login: server URL, its CA, and the API token (0600)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from edgeward.api_client import ApiClient, tls_context
from edgeward.errors import AuthenticationError, InputError
from edgeward.files import private_dir, read_file, write_secret


def config_dir() -> Path:
    base = os.environ.get("EDGEWARD_CONFIG") or os.path.join(
        os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"), "edgeward")
    return Path(base)


@dataclass(frozen=True)
class Login:
    server: str
    token: str

    @property
    def ca(self) -> Path:
        return config_dir() / "server-ca.pem"

    def client(self) -> ApiClient:
        return ApiClient(self.server, tls_context(str(self.ca)), self.token)


def save(server: str, ca: Path, token: str) -> Login:
    directory = private_dir(config_dir())
    login = Login(server.rstrip("/"), token)
    write_secret(directory / "server-ca.pem", read_file(ca, "server CA certificate"))
    write_secret(directory / "fleet.json",
                 json.dumps({"server": login.server, "token": token}).encode())
    return login


def load() -> Login:
    path = config_dir() / "fleet.json"
    if not path.exists():
        raise AuthenticationError("not logged in: run 'edgeward fleet login' first")
    try:
        data = json.loads(read_file(path, "fleet login"))
        return Login(str(data["server"]), str(data["token"]))
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"fleet login {path} is corrupt: log in again") from e
