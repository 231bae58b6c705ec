"""Phone numbers: stored in E.164, shown and logged masked."""
from __future__ import annotations

import phonenumbers

from config.redact import mask_phone  # noqa: F401 - one masking rule for the API, logs and stored errors
from membership.exceptions import InvalidInput


def normalize_phone(raw: str, region: str = "CN") -> str:
    """`raw` in E.164 (`+8613800138000`); mainland numbers may come without +86."""
    try:
        parsed = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        raise InvalidInput("phone: not a phone number") from None
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidInput("phone: not a possible phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)

