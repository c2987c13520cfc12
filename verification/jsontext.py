"""JSON text from clients, where any failure to parse is one ValueError (deep nesting included)."""

from __future__ import annotations

import json


def loads(text):
    """`json.loads`, except that "[[[[..." too deep to parse is a ValueError, not a RecursionError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
