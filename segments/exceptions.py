"""Errors of the segments package; the API maps them to HTTP."""


class SegmentError(Exception):
    """Base of every segments error."""


class InvalidDefinition(SegmentError):
    """A definition that does not parse; `path` points at the offending node (`$.all[1].trait`)."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class NotFound(SegmentError):
    """The segment or rule asked for does not exist."""
