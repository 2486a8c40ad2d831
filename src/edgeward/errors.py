"""The one exception tree of edgeward.

Every failure a user can meet is an :class:`Error`: it carries a message meant
for a person (one line, saying what was refused and why, never key material)
and the exit code the CLI returns. Foreign exceptions are converted where they
enter (``raise ManifestError(...) from e``); the CLI catches ``Error`` in one
place and nothing else.

::

    Error                         exit 1
    ├── UsageError                exit 2   wrong command-line use
    ├── InputError                exit 3   malformed input (a file, a field, a value)
    │   ├── EnvelopeError                  a signed envelope that does not parse
    │   ├── ManifestError                  an image manifest that does not parse
    │   ├── KeyFileError                   an unreadable key file or wrong passphrase
    │   └── NotFound                       no such thing (for this principal) (HTTP 404)
    ├── SecurityError             exit 4   a verification refused something
    │   ├── SignatureError                 no valid signature by a trusted key
    │   ├── IntegrityError                 bytes that do not match their digest
    │   ├── RollbackError                  a security version below the fused counter
    │   ├── CertificateError               a certificate that does not chain or is invalid
    │   ├── AttestationError               a quote that does not verify
    │   ├── AuthenticationError            no valid token or certificate (HTTP 401)
    │   ├── PermissionDenied               a principal not allowed an action (HTTP 403)
    │   └── BootRefused           exit 5   a boot stage refused to go on
    ├── StateError                exit 6   the action does not fit the current state
    │   ├── FuseError                      an OTP write that hardware would refuse
    │   ├── ProvisioningError              a device or factory not in a state to provision
    │   └── Conflict                       a name or identity already taken (HTTP 409)
    ├── ToolError                 exit 7   an external program is missing or failed
    │   └── Unreachable                    the fleet server does not answer
    │       └── Throttled                  it takes no more of this now (HTTP 429)
    └── NotAvailable              exit 8   a feature this build does not offer yet
"""

from __future__ import annotations


def one_line(text: str) -> str:
    """``text`` with control characters escaped: a message can never forge a log line."""
    return "".join(
        c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


class Error(Exception):
    """Root of every user-facing edgeward error.

    The message is made one line whatever it quotes (a hostile certificate's
    subject, a device-chosen version string): control characters are escaped.
    """

    exit_code = 1

    def __init__(self, message: str) -> None:
        message = one_line(message)
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(Error):
    exit_code = 2


class InputError(Error):
    exit_code = 3


class EnvelopeError(InputError):
    pass


class ManifestError(InputError):
    pass


class KeyFileError(InputError):
    pass


class NotFound(InputError):
    pass


class SecurityError(Error):
    exit_code = 4


class SignatureError(SecurityError):
    pass


class IntegrityError(SecurityError):
    pass


class RollbackError(SecurityError):
    pass


class CertificateError(SecurityError):
    pass


class AttestationError(SecurityError):
    pass


class AuthenticationError(SecurityError):
    pass


class PermissionDenied(SecurityError):
    pass


class BootRefused(SecurityError):
    """A boot stage refused to continue; ``stage`` names it."""

    exit_code = 5

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"boot refused at {stage}: {reason}")
        self.stage = stage
        self.reason = reason


class StateError(Error):
    exit_code = 6


class FuseError(StateError):
    pass


class ProvisioningError(StateError):
    pass


class Conflict(StateError):
    pass


class ToolError(Error):
    exit_code = 7


class Unreachable(ToolError):
    pass


class Throttled(Unreachable):
    """The server is there but takes no more of this from us now: try again after
    ``retry_after`` seconds (HTTP 429 with Retry-After)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotAvailable(Error):
    exit_code = 8
