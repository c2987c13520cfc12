"""Phone numbers: parsed and validated by `phonenumbers`, stored in E.164, masked in logs."""

from __future__ import annotations

import functools

import phonenumbers


class InvalidPhone(ValueError):
    """Not a phone number that can receive an SMS."""

    code = "invalid_phone"

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.details = details


class RefusedDestination(InvalidPhone):
    """A valid number this service is configured not to send codes to."""

    def __init__(self, message: str, code: str, **details):
        super().__init__(message, **details)
        self.code = code


def parse(raw) -> str:
    """The number in E.164, from any international form (`+1 415-555-0100`)."""
    return e164(parse_number(raw))


def e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_number(raw) -> phonenumbers.PhoneNumber:
    """The valid number `raw` names, parsed; InvalidPhone when it names none."""
    return _parse_typed(raw)[0]


def _parse_typed(raw) -> tuple[phonenumbers.PhoneNumber, int]:
    """parse_number, with the number's PhoneNumberType."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidPhone("phone must be a non-empty string in international format, e.g. +14155550100")
    if len(raw) > 64:
        raise InvalidPhone("phone is too long")
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise InvalidPhone("phone is not a phone number in international format, e.g. +14155550100") from None
    # What is_valid_number asks: does the number fit a type of its region's numbering plan. Asked as
    # number_type, it gives the type too, which check_destination needs: a start then matches the
    # plan's patterns once instead of twice (most of what `phonenumbers` costs it).
    kind = phonenumbers.number_type(number)
    if kind == phonenumbers.PhoneNumberType.UNKNOWN:
        raise InvalidPhone("phone is not a valid phone number")
    return number, kind


def destination(raw, allowed_countries=(), blocked_types=()) -> str:
    """The number `raw` names in E.164, if it is valid and passes check_destination; else InvalidPhone."""
    number, kind = _parse_typed(raw)
    check_destination(number, allowed_countries, blocked_types, kind)
    return e164(number)


def check_destination(number: phonenumbers.PhoneNumber, allowed_countries=(), blocked_types=(),
                      kind: int | None = None) -> None:
    """Refuse numbers outside ALLOWED_COUNTRIES, and types in BLOCKED_NUMBER_TYPES ("none": no type).

    An SMS to a premium-rate or shared-cost number earns its operator money (SMS pumping), and a fixed
    line, toll-free or pager number cannot read a code; `phonenumbers` tells them apart by numbering plan.
    Numbers it cannot tell (FIXED_LINE_OR_MOBILE, as all of North America) pass. `kind` is the number's
    PhoneNumberType when the caller has it already.
    """
    if allowed_countries:
        region = phonenumbers.region_code_for_number(number)
        if region not in {c.upper() for c in allowed_countries}:
            raise RefusedDestination(f"phone numbers from {region} are not accepted", "country_not_allowed",
                                     country=region)
    blocked = blocked_type_names(tuple(blocked_types))
    if not blocked:
        return
    name = _TYPE_NAMES.get(phonenumbers.number_type(number) if kind is None else kind, "UNKNOWN")
    if name in blocked:
        raise RefusedDestination(f"{name.lower().replace('_', ' ')} numbers cannot receive verification codes",
                                 "number_type_not_allowed", numberType=name.lower())


@functools.lru_cache(maxsize=8)  # the settings' one tuple, read at every start
def blocked_type_names(types: tuple[str, ...]) -> frozenset[str]:
    """BLOCKED_NUMBER_TYPES as the PhoneNumberType names it blocks ("none" blocks none)."""
    return frozenset(t.upper() for t in types) - {"NONE"}


_TYPE_NAMES = {value: name for name, value in vars(phonenumbers.PhoneNumberType).items() if name.isupper()}


def mask(e164: str) -> str:
    """`+14155550100` -> `+1415*****00`: enough to tell numbers apart in logs, not to dial them."""
    if not e164:
        return ""
    keep_head = min(5, max(len(e164) - 4, 1))
    return e164[:keep_head] + "*" * max(len(e164) - keep_head - 2, 0) + e164[-2:]
