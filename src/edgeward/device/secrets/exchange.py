"""The agent's side of the secrets conversation with the fleet server."""

from __future__ import annotations

from collections.abc import Callable

from edgeward.api_client import ApiClient
from edgeward.board.base import Board
from edgeward.device import identity
from edgeward.device.secrets import sync
from edgeward.device.storage import recovery
from edgeward.trust.certs import serial_of


def escrow(board: Board, client: ApiClient) -> bool:
    """Hand the recovery key to the server if it does not hold it yet (once)."""
    key = recovery.pending(board)
    if key is None:
        return False
    client.call("POST", "/v1/gateway/recovery-key", {"recovery_key": key})
    recovery.escrowed(board, key)
    return True


def exchange(board: Board, client: ApiClient, say: Callable[[str], None]) -> sync.Applied:
    """Take the secrets delivered, then report the credentials made here (the server
    refuses both to a gateway whose attestation is not good: an error, said by the
    caller)."""
    answer = client.call("GET", "/v1/gateway/secrets")
    delivered = answer.get("secrets", []) if isinstance(answer, dict) else []
    done = sync.apply(board, serial_of(identity.certificate(board)),
                      identity.identity_key(board), delivered if isinstance(delivered, list)
                      else [])
    for what, pairs in (("new", done.added), ("rotated", done.rotated),
                        ("revoked", done.revoked)):
        for app, name in pairs:
            say(f"secret {app}/{name}: {what}")
    for reason in done.refused:
        say(f"a delivered secret was refused: {reason}")

    def report(app: str, name: str, value: str) -> None:
        client.call("POST", "/v1/gateway/credentials", {"app": app, "name": name,
                                                        "value": value})

    done.made = sync.ensure_credentials(board, report)
    for app, name in done.made:
        say(f"credential {app}/{name} made for this gateway and reported")
    return done
