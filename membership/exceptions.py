"""Errors of the profile store; the API maps them to HTTP."""


class MembershipError(Exception):
    """Base of every profile-store error."""


class NotFound(MembershipError):
    """The thing asked for does not exist (or is not visible to the caller)."""


class Conflict(MembershipError):
    """The change contradicts what is stored (a duplicate code, a userid taken)."""


class InvalidInput(MembershipError):
    """A value that cannot be stored (an unparseable phone number, an unknown identity type)."""


class Forbidden(MembershipError):
    """The caller's role or store does not allow this change (answered 403)."""
