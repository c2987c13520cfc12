"""Codes: their shape, their generation, and the HMAC that stands in for them."""

import pytest

from verification import codes


@pytest.mark.parametrize(("code", "expected"), [
    ("0042", True),
    ("1234", True),
    ("0000000000", True),
    ("123", False),
    ("12345678901", False),
    ("12a4", False),
    (" 1234", False),
    ("1234\n", False),
    ("١٢٣٤", False),   # Arabic-Indic digits
    ("１２３４", False),  # fullwidth digits
    ("", False),
    (1234, False),
    (None, False),
    (["1234"], False),
])
def test_well_formed(code, expected):
    assert codes.is_well_formed(code) is expected


@pytest.mark.parametrize("length", [4, 6, 10])
def test_generated_codes_are_zero_padded_digits(length):
    generated = {codes.generate(length) for _ in range(300)}
    assert all(len(c) == length and c.isascii() and c.isdigit() for c in generated)
    assert len(generated) > 250  # random, not a constant


def test_leading_zeros_are_kept_over_many_draws():
    assert any(codes.generate(4).startswith("0") for _ in range(2000))


def test_digest_is_keyed_and_bound_to_the_verification():
    a = codes.digest("secret", "id1", "0042")
    assert a == codes.digest("secret", "id1", "0042")
    assert a != codes.digest("other", "id1", "0042")
    assert a != codes.digest("secret", "id2", "0042")
    assert a != codes.digest("secret", "id1", "42")
    assert "0042" not in a


@pytest.mark.parametrize(("body", "expected"), [
    ("1234", "1234"),
    (" 1234 ", "1234"),
    ("Code: 1234", "1234"),
    ("my code is 0042, thanks", "0042"),
    ("123 4567", "4567"),
    ("12345678901", None),
    ("١٢٣٤", None),
    ("no digits", None),
    ("", None),
])
def test_first_code_in(body, expected):
    assert codes.first_code_in(body) == expected
