"""The worker's side of a verification: send the challenge once, and expire it on time."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

from verification import codes
from verification.model import EXPIRED, FAILED, PENDING
from verification.phone import mask
from verification.sms import SendError
from verification.store import Store

log = logging.getLogger(__name__)

MESSAGE = "Your verification code is {code}"


@dataclass(frozen=True)
class RetryLater(Exception):
    """Twilio refused for now; try the send again after `countdown` seconds."""

    countdown: float
    reason: str


def send(store: Store, sender, secret: str, verification_id: str, *, tries: int, max_tries: int,
         status_callback: str | None = None) -> str:
    """Send the SMS challenge; returns a short outcome that never holds the code."""
    extra = {"verification_id": verification_id}
    verification = store.get(verification_id)
    if verification is None or verification.status != PENDING or verification.send_status != "queued":
        state = "not_found" if verification is None else f"{verification.status}/{verification.send_status}"
        log.info("send skipped: %s", state, extra=extra)
        return f"skipped: {state}"
    code = codes.generate(verification.code_length)
    # The hash is stored before the SMS leaves, so a code that reaches the phone always approves.
    claim = store.claim_send(verification_id, codes.digest(secret, verification_id, code))
    if claim[0] != "claimed":
        log.info("send skipped: %s/%s", claim[1], claim[2], extra=extra)
        return f"skipped: {claim[1]}/{claim[2]}"
    phone, expires_ms = claim[1], int(claim[2])
    try:
        sent = sender.send(phone, MESSAGE.format(code=code), status_callback=status_callback)
    except SendError as exc:
        del code
        return _failed(store, verification_id, exc, tries=tries, max_tries=max_tries, expires_ms=expires_ms)
    del code
    store.record_send(verification_id, "sent", sent.sid)
    log.info("challenge sent to %s", mask(phone), extra=extra)
    return "sent"


def _failed(store: Store, verification_id: str, exc: SendError, *, tries: int, max_tries: int,
            expires_ms: int) -> str:
    extra = {"verification_id": verification_id}
    if exc.transient and tries < max_tries:
        countdown = backoff(tries, exc.retry_after)
        # A code that arrives after the deadline is of no use: give up instead.
        if time.time() + countdown < expires_ms / 1000:
            store.record_send(verification_id, "retry", str(exc))
            log.warning("send not accepted (%s); retrying in %.1fs", exc, countdown, extra=extra)
            raise RetryLater(countdown, str(exc))
    fields = {"send": "failed"}
    if exc.error_code:
        fields["error"] = exc.error_code
    store.finish(verification_id, FAILED, reason=str(exc), **fields)
    log.warning("send failed for good: %s", exc, extra=extra)
    return "failed"


def backoff(tries: int, retry_after: float | None = None, base: float = 1.0, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter; a server's `Retry-After` is a floor."""
    delay = random.uniform(0, min(cap, base * 2 ** tries))
    return max(delay, retry_after or 0.0)


def expire(store: Store, verification_id: str) -> tuple[str, float]:
    """Mark a still-pending verification expired; returns the outcome and, if not due, seconds left."""
    result = store.finish(verification_id, EXPIRED)
    if result.outcome == "done":
        log.info("verification expired", extra={"verification_id": verification_id})
    return result.outcome, (result.ms / 1000 if result.outcome == "not_due" else 0.0)
