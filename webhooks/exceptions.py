"""Errors of the intake, on the house's bases (config.errors)."""
from config.errors import InvalidInput


class PermanentEventError(InvalidInput):
    """This event can never be handled as it stands (a required field missing, a corrupt CreateTime).

    The inbox records it as failed after one attempt instead of retrying; a replay can still try it again.
    """
