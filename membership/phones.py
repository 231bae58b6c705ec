"""Phone numbers: stored in E.164, shown and logged masked."""
from __future__ import annotations

import phonenumbers

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


def mask_phone(e164: str) -> str:
    """`+86138****8000`: enough to recognise, not enough to call."""
    if len(e164) < 8:
        return "*" * len(e164)
    return f"{e164[:-8]}****{e164[-4:]}"
