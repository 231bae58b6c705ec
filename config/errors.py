"""The errors Siyu's packages raise on purpose, each carrying the HTTP status it is answered with.

Every package's exceptions derive from these; `siyu/app.py` maps them with one exception handler to
`{"detail": message}` and the status, so routes never translate errors themselves. A message is what
the caller reads: it never carries a secret, a full phone number or a SQL statement.
"""
from __future__ import annotations


class DomainError(Exception):
    """Base of every error Siyu raises on purpose; answered with `status_code` and `detail`."""

    status_code = 400

    @property
    def detail(self) -> str:
        """What the answer's `detail` says."""
        return str(self)


class InvalidInput(DomainError):
    """A value that cannot be stored or used (an unparseable phone number, an unknown identity type)."""

    status_code = 422


class NotFound(DomainError):
    """The thing asked for does not exist (or is not visible to the caller)."""

    status_code = 404


class Conflict(DomainError):
    """The change contradicts what is stored (a duplicate code, a userid taken, a thing in use)."""

    status_code = 409


class Forbidden(DomainError):
    """The caller's role, store or credentials do not allow this."""

    status_code = 403


class Upstream(DomainError):
    """A service Siyu depends on (WeChat, WeCom, Pay) refused or failed the call."""

    status_code = 502


class Unavailable(DomainError):
    """Siyu cannot do this right now (a lock held too long, a database error a retry may get past)."""

    status_code = 503
