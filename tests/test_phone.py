"""Phone numbers: parsed to E.164 by phonenumbers, masked for logs."""

import phonenumbers
import pytest

from verification import phone


@pytest.mark.parametrize(("raw", "expected"), [
    ("+14155550100", "+14155550100"),
    ("+1 (415) 555-0100", "+14155550100"),
    ("+44 7400 123456", "+447400123456"),
])
def test_parse_to_e164(raw, expected):
    assert phone.parse(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "4155550100", "+1415", "+999123456", "hello", "+1" + "5" * 70,
                                 None, 14155550100, ["+14155550100"], {"n": 1}])
def test_parse_refuses(raw):
    with pytest.raises(phone.InvalidPhone):
        phone.parse(raw)


@pytest.mark.parametrize(("e164", "masked"), [
    ("+14155550100", "+1415*****00"),
    ("+447400123456", "+4474******56"),
])
def test_mask(e164, masked):
    assert phone.mask(e164) == masked


def test_valid_exactly_when_phonenumbers_finds_a_type():
    """parse_number asks `number_type` rather than `is_valid_number`, since a start needs the type too:
    the same question (the region's plan has a pattern for the number), checked on every example."""
    examples = [phonenumbers.invalid_example_number(region) for region in phonenumbers.SUPPORTED_REGIONS]
    for region in phonenumbers.SUPPORTED_REGIONS:
        examples += [phonenumbers.example_number_for_type(region, kind) for kind in range(12)]
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        examples.append(phonenumbers.example_number_for_non_geo_entity(code))
    examples = [number for number in examples if number is not None]
    assert sum(map(phonenumbers.is_valid_number, examples)) > 1000
    for number in examples:
        found = phonenumbers.number_type(number) != phonenumbers.PhoneNumberType.UNKNOWN
        assert found == phonenumbers.is_valid_number(number), number


@pytest.mark.parametrize(("raw", "allowed", "refusal"), [
    ("+14155550100", (), None),
    ("+14155550100", ("ca", "US"), None),
    ("+447400123456", ("US",), "country_not_allowed"),
    ("+447400123456", (), None),
    ("+442079460000", (), "number_type_not_allowed"),  # a London landline
    ("+19005550100", (), "number_type_not_allowed"),  # premium rate
    ("+999123456", (), "invalid_phone"),
])
def test_destination(raw, allowed, refusal):
    blocked = ("FIXED_LINE", "PREMIUM_RATE", "TOLL_FREE")
    if refusal is None:
        assert phone.destination(raw, allowed, blocked) == phonenumbers.format_number(
            phonenumbers.parse(raw), phonenumbers.PhoneNumberFormat.E164)
    else:
        with pytest.raises(phone.InvalidPhone) as refused:
            phone.destination(raw, allowed, blocked)
        assert refused.value.code == refusal
