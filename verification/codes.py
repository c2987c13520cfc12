"""Codes: made with `secrets`, stored only as an HMAC, checked for shape before they cost anything."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

# ASCII digits only: `\d` would also take "١٢٣٤" and other scripts' digits.
_CODE = re.compile(r"[0-9]{4,10}")


def generate(length: int) -> str:
    return f"{secrets.randbelow(10 ** length):0{length}d}"


def digest(secret: str, verification_id: str, code: str) -> str:
    """HMAC-SHA256 of the id and the code, keyed with CODE_HASH_SECRET (with the id, so one verification's
    hash says nothing about another's), cut to its first 128 bits: half the output, as RFC 2104 allows,
    and 33 bytes less in every record. check.lua compares it with the first 32 hex digits of a hash
    stored whole by an earlier version."""
    message = f"{verification_id}:{code}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def is_well_formed(code) -> bool:
    return isinstance(code, str) and _CODE.fullmatch(code) is not None


def first_code_in(text: str) -> str | None:
    """The first group of 4 to 10 ASCII digits standing on its own in a text (an SMS reply)."""
    match = re.search(r"(?<![0-9])[0-9]{4,10}(?![0-9])", text or "")
    return match.group(0) if match else None
