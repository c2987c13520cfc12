"""Phone numbers: parsed to E.164 by phonenumbers, masked for logs."""

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
