"""The worker's side of a verification: send the challenge once, and expire it on time."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from verification import codes, metrics
from verification.model import EXPIRED, FAILED, PENDING
from verification.phone import mask
from verification.sms import SendError
from verification.store import Store

log = logging.getLogger(__name__)

MESSAGE = "Your verification code is {code}"
# Served by verification/webhooks.py; Twilio signs the full URL, so the id rides in the query.
STATUS_CALLBACK_PATH = "/twilio/status"


def status_callback_url(public_base_url: str, verification_id: str) -> str | None:
    """Where Twilio reports the challenge SMS's delivery; none without a public URL to reach us at."""
    if not public_base_url:
        return None
    return f"{public_base_url.rstrip('/')}{STATUS_CALLBACK_PATH}?{urlencode({'v': verification_id})}"


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
        metrics.sms_send("skipped")
        return f"skipped: {state}"
    code = codes.generate(verification.code_length)
    # The hash is stored before the SMS leaves, so a code that reaches the phone always approves.
    claim = store.claim_send(verification_id, codes.digest(secret, verification_id, code))
    if not claim.claimed:
        log.info("send skipped: %s", claim.skipped_because, extra=extra)
        metrics.sms_send("skipped")
        return f"skipped: {claim.skipped_because}"
    phone, expires_ms = claim.phone, claim.expires_ms
    began = time.monotonic()
    try:
        sent = sender.send(phone, MESSAGE.format(code=code), status_callback=status_callback)
    except SendError as exc:
        metrics.sms_send_took(time.monotonic() - began)
        return _failed(store, verification_id, exc, tries=tries, max_tries=max_tries, expires_ms=expires_ms)
    metrics.sms_send_took(time.monotonic() - began)
    store.record_send(verification_id, "sent", sent.sid)
    metrics.sms_send("sent")
    log.info("challenge sent to %s", mask(phone), extra=extra)
    return "sent"


def _failed(store: Store, verification_id: str, exc: SendError, *, tries: int, max_tries: int,
            expires_ms: int) -> str:
    extra = {"verification_id": verification_id}
    if exc.maybe_sent:
        # Twilio may hold the message: the ledger stays `sending` and the hash stays, so an SMS that
        # does arrive still approves, and no retry or redelivery sends another. Without it, the
        # verification expires at its deadline.
        store.record_send(verification_id, "unknown", str(exc))
        log.warning("send outcome unknown (%s); not retrying", exc, extra=extra)
        metrics.sms_send("unknown")
        return "unknown"
    # `tries` counts the tries before this one: at most `max_tries` requests in all.
    if exc.transient and tries + 1 < max_tries:
        countdown = backoff(tries, exc.retry_after)
        # A code that arrives after the deadline is of no use: give up instead.
        if time.time() + countdown < expires_ms / 1000:
            store.record_send(verification_id, "retry", str(exc))
            log.warning("send not accepted (%s); retrying in %.1fs", exc, countdown, extra=extra)
            metrics.sms_send("retry")
            raise RetryLater(countdown, str(exc))
    fields = {"send": "failed"}
    if exc.error_code:
        fields["error"] = exc.error_code
    store.finish(verification_id, FAILED, reason=str(exc), **fields)
    log.warning("send failed for good: %s", exc, extra=extra)
    metrics.sms_send("failed")
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


def sweep(store: Store, batch: int = 500) -> int:
    """Expire the pending verifications past their deadline; returns how many it expired.

    The safety net under the countdown tasks, which a dead worker or a broker restart can lose.
    """
    expired = 0
    while True:
        overdue = store.overdue(batch)
        settled = 0
        for verification_id in overdue:
            outcome, _ = expire(store, verification_id)
            expired += outcome == "done"
            # Every outcome but not_due takes the id out of the deadlines index.
            settled += outcome != "not_due"
        if len(overdue) < batch or not settled:
            return expired
