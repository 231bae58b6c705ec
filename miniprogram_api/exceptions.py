"""Errors of the consumer API (the house's own, config.errors, plus the 401 of a missing or bad session)."""
from config.errors import Conflict, DomainError, InvalidInput, NotFound


class Unauthorized(DomainError):
    """No session token, or one that is forged, expired, ended by a newer login, or not a session token at all."""

    status_code = 401


__all__ = ["Conflict", "DomainError", "InvalidInput", "NotFound", "Unauthorized"]
