"""Which HTTP status answers which kind of :class:`edgeward.errors.Error`."""

from __future__ import annotations

import math

from edgeward import errors

STATUS: list[tuple[type[errors.Error], int]] = [
    (errors.AuthenticationError, 401), (errors.CertificateError, 401),
    (errors.PermissionDenied, 403), (errors.NotFound, 404), (errors.Conflict, 409),
    (errors.StateError, 409), (errors.InputError, 400), (errors.SecurityError, 400),
    (errors.Throttled, 429), (errors.ToolError, 503), (errors.NotAvailable, 503),
]


def status_of(error: errors.Error) -> int:
    return next((code for kind, code in STATUS if isinstance(error, kind)), 500)


def headers_of(error: errors.Error) -> dict[str, str] | None:
    """Retry-After, in whole seconds, on a refusal that says when to come back."""
    if isinstance(error, errors.Throttled):
        return {"retry-after": str(max(1, math.ceil(error.retry_after)))}
    return None
