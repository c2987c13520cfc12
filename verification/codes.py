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
    # Keyed with the id as well, so one verification's hash says nothing about another's.
    message = f"{verification_id}:{code}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def is_well_formed(code) -> bool:
    return isinstance(code, str) and _CODE.fullmatch(code) is not None


def first_code_in(text: str) -> str | None:
    """The first group of 4 to 10 ASCII digits standing on its own in a text (an SMS reply)."""
    match = re.search(r"(?<![0-9])[0-9]{4,10}(?![0-9])", text or "")
    return match.group(0) if match else None
