"""Errors of the segments package, on the house's bases (config.errors), which carry their HTTP status."""
from config.errors import Conflict, InvalidInput, NotFound, Unavailable

__all__ = ["EvaluationFailed", "InUse", "InvalidDefinition", "NotFound", "Unevaluable"]


class InvalidDefinition(InvalidInput):
    """A definition that does not parse; `path` points at the offending node (`$.all[1].trait`)."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class InUse(Conflict):
    """The segment cannot be deleted: another segment, a rule or a campaign uses it."""


class Unevaluable(InvalidInput):
    """A segment that no retry can evaluate (its stored definition is invalid, or too large for the database)."""

    def __init__(self, segment_id: int | None, reason: str):
        super().__init__(f"segment {segment_id} cannot be evaluated: {reason}" if segment_id is not None else reason)
        self.segment_id = segment_id
        self.reason = reason


class EvaluationFailed(Unavailable):
    """A database error during an evaluation that a retry may get past; its message carries no SQL."""
