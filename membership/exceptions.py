"""Errors of the profile store: the house's own (config.errors), under the names membership has always used."""
from config.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound

__all__ = ["Conflict", "DomainError", "Forbidden", "InvalidInput", "NotFound"]
