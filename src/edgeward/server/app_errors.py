"""Which HTTP status answers which kind of :class:`edgeward.errors.Error`."""

from __future__ import annotations

from edgeward import errors

STATUS: list[tuple[type[errors.Error], int]] = [
    (errors.AuthenticationError, 401), (errors.CertificateError, 401),
    (errors.PermissionDenied, 403), (errors.NotFound, 404), (errors.Conflict, 409),
    (errors.StateError, 409), (errors.InputError, 400), (errors.SecurityError, 400),
    (errors.ToolError, 503), (errors.NotAvailable, 503),
]


def status_of(error: errors.Error) -> int:
    return next((code for kind, code in STATUS if isinstance(error, kind)), 500)
