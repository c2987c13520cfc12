"""The verification record and its statuses."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from datetime import datetime, timezone

PENDING = "pending"
APPROVED = "approved"
MAX_ATTEMPTS_REACHED = "max_attempts_reached"
EXPIRED = "expired"
CANCELED = "canceled"
FAILED = "failed"
STATUSES = (PENDING, APPROVED, MAX_ATTEMPTS_REACHED, EXPIRED, CANCELED, FAILED)
FINAL_STATUSES = frozenset(STATUSES) - {PENDING}

# The send ledger: queued -> sending -> sent | failed (a rejected try goes back to queued).
SEND_STATUSES = ("queued", "sending", "sent", "failed")


@dataclass(frozen=True)
class Verification:
    id: str
    phone: str
    status: str
    send_status: str
    created_ms: int
    updated_ms: int
    expires_ms: int
    attempts_remaining: int
    max_attempts: int
    code_length: int
    reason: str | None = None
    error_code: int | None = None
    delivery_status: str | None = None

    @classmethod
    def from_hash(cls, verification_id: str, h: dict[str, str]) -> "Verification":
        return cls(
            id=verification_id,
            phone=h["phone"],
            status=h["status"],
            send_status=h["send"],
            created_ms=int(h["created"]),
            updated_ms=int(h["updated"]),
            expires_ms=int(h["expires"]),
            attempts_remaining=int(h["attempts"]),
            max_attempts=int(h["max"]),
            code_length=int(h["len"]),
            reason=h.get("reason") or None,  # '' once it no longer applies (events.lua)
            error_code=int(h["error"]) if h.get("error") else None,
            delivery_status=h.get("delivery"),
        )

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def iso(ms: int) -> str:
    """ISO 8601 in UTC with milliseconds, e.g. 2026-11-26T10:37:14.123Z."""
    return f"{utc_second(ms // 1000)}.{ms % 1000:03d}Z"


@functools.lru_cache(maxsize=1024)  # a resource's created and updated, a log line's time, a second's requests
def utc_second(second: int) -> str:
    """A whole second since 1970 as ISO 8601 in UTC, without a zone: 2026-11-26T10:37:14."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
