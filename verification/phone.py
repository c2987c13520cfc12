"""Phone numbers: parsed and validated by `phonenumbers`, stored in E.164, masked in logs."""

from __future__ import annotations

import phonenumbers


class InvalidPhone(ValueError):
    """Not a phone number that can receive an SMS."""


def parse(raw) -> str:
    """The number in E.164, from any international form (`+1 415-555-0100`)."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidPhone("phone must be a non-empty string in international format, e.g. +14155550100")
    if len(raw) > 64:
        raise InvalidPhone("phone is too long")
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise InvalidPhone("phone is not a phone number in international format, e.g. +14155550100") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone("phone is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask(e164: str) -> str:
    """`+14155550100` -> `+1415*****00`: enough to tell numbers apart in logs, not to dial them."""
    if not e164:
        return ""
    keep_head = min(5, max(len(e164) - 4, 1))
    return e164[:keep_head] + "*" * max(len(e164) - keep_head - 2, 0) + e164[-2:]
