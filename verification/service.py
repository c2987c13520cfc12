"""The verification lifecycle: start, read, check, cancel. Views and tasks call this."""

from __future__ import annotations

import contextlib
import logging
import secrets
import time

import redis

from verification import codes, metrics, phone as phones, ratelimits
from verification.errors import ApiError, Conflict, NotFound
from verification.model import CANCELED, EXPIRED, FAILED, PENDING, Verification
from verification.store import Enqueue, LimitRefused, Store

log = logging.getLogger(__name__)


class Dispatcher:
    """Hands work to the background: what the service needs of Celery, and no more."""

    def send_challenge(self, verification_id: str) -> None:
        raise NotImplementedError

    def expire_later(self, verification_id: str, countdown: float) -> None:
        raise NotImplementedError

    def new_verification(self, verification_id: str, countdown: float) -> None:
        """Both tasks of a start; a dispatcher may send them together."""
        self.send_challenge(verification_id)
        self.expire_later(verification_id, countdown)

    def with_start(self, verification_id: str, countdown: float) -> Enqueue | None:
        """Both tasks of a start as broker writes for the store to make with the start itself, or None to
        have new_verification send them once the start is stored."""
        return None


def new_id() -> str:
    """128 random bits in 22 characters of base64url (32 in hex would cost about 64 bytes more a pending
    verification: the id is in its key, its number's index and both sorted sets), never led by a `-` that
    a command line would read as an option."""
    while (verification_id := secrets.token_urlsafe(16))[0] == "-":
        pass
    return verification_id


class VerificationService:
    def __init__(self, store: Store, settings, dispatcher: Dispatcher, limiter=None):
        self.store = store
        self.settings = settings
        self.dispatcher = dispatcher
        # ratelimits.Limiter; None runs without rate limits.
        self.limiter = limiter

    def destination(self, raw_phone) -> str:
        """The number in E.164 if it may receive a code here; else the 400 that says why."""
        s = self.settings
        try:
            return phones.destination(raw_phone, s.ALLOWED_COUNTRIES, s.BLOCKED_NUMBER_TYPES)
        except phones.InvalidPhone as exc:
            raise ApiError(str(exc), code=exc.code, **exc.details) from None

    def start(self, raw_phone, verification_id: str | None = None, caller=None) -> Verification:
        """`caller` (ratelimits.Caller: client IP, API key fingerprint) adds the per-IP and per-key limits."""
        s = self.settings
        e164 = self.destination(raw_phone)
        verification_id = verification_id or new_id()
        # When the broker shares the state's Redis server, the start's messages go in with it.
        enqueue = self.dispatcher.with_start(verification_id, s.VERIFICATION_WINDOW_SECONDS)
        with self._limited(self.limiter.start(e164, caller) if self.limiter else []) as limits:
            created = self.store.create(verification_id, e164, s.VERIFICATION_WINDOW_SECONDS * 1000,
                                        s.VERIFICATION_MAX_ATTEMPTS, s.VERIFICATION_CODE_LENGTH,
                                        limits=limits, enqueue=enqueue)
        if enqueue is None:
            try:
                self.dispatcher.new_verification(verification_id, s.VERIFICATION_WINDOW_SECONDS)
            except Exception:
                # The broker is out of reach and the client gets a 503: leave no pending verification
                # behind it, and the number's earlier verification, if any, as it was.
                self._abandon(verification_id)
                raise
        if created.previous_id and created.previous_id != verification_id:
            # One pending verification per number, so an SMS reply always finds exactly one. Only now
            # that the new one's SMS is on its way: a failed start must not cost the person the old one.
            try:
                self.store.finish(created.previous_id, CANCELED, reason="superseded by a newer verification",
                                  of_phone=e164)
            except redis.RedisError:
                # Replies already resolve to the new one (the number's index points at it); the old
                # one expires at its deadline.
                log.warning("could not cancel the superseded verification",
                            extra={"verification_id": created.previous_id})
        log.info("verification started for %s", phones.mask(e164), extra={"verification_id": verification_id})
        return Verification(
            id=verification_id, phone=e164, status=PENDING, send_status="queued",
            created_ms=created.created_ms, updated_ms=created.created_ms, expires_ms=created.expires_ms,
            attempts_remaining=s.VERIFICATION_MAX_ATTEMPTS, max_attempts=s.VERIFICATION_MAX_ATTEMPTS,
            code_length=s.VERIFICATION_CODE_LENGTH,
        )

    @contextlib.contextmanager
    def _limited(self, slots: list[ratelimits.Slot]):
        """The slots as a script takes them; a script's refusal becomes the 429 of the limit that refused."""
        try:
            yield ratelimits.as_limits(slots)
        except LimitRefused as refused:
            raise self.limiter.refusal(slots[refused.position], refused.retry_after) from None

    def _abandon(self, verification_id: str) -> None:
        try:
            self.store.finish(verification_id, FAILED, reason="the SMS could not be queued", send="failed")
        except redis.RedisError:
            pass  # Redis is down too: the sweep expires it at its deadline.

    def get(self, verification_id: str) -> Verification:
        verification = self.store.get(verification_id)
        if verification is None:
            raise NotFound(f"No verification {verification_id}.")
        if verification.status == PENDING and time.time() * 1000 >= verification.expires_ms:
            # The expiry task is late or lost; Redis's clock has the last word.
            done = self.store.finish(verification_id, EXPIRED)
            verification = done.verification or verification
        return verification

    def check(self, verification_id: str, code, channel: str = "api", caller=None,
              of_phone: str = "") -> tuple[Verification, bool]:
        """Compare a code; returns the verification after the check and whether it was approved.

        One Redis round trip: the script answers with the state as it is after the check.
        `caller` (ratelimits.Caller) adds the per-IP limit on checks; SMS replies come without one, but
        with `of_phone`, their sender: a verification for another number is NotFound.
        """
        if not codes.is_well_formed(code):
            metrics.checked("malformed", channel)
            raise ApiError("code must be a string of 4 to 10 ASCII digits", code="invalid_code")
        code_hash = codes.digest(self.settings.CODE_HASH_SECRET, verification_id, code)
        with self._limited(self.limiter.check(caller) if self.limiter else []) as limits:
            result = self.store.check(verification_id, code_hash, channel, limits=limits, of_phone=of_phone)
        if result.outcome == "not_found":
            raise NotFound(f"No verification {verification_id}.")
        log.info("check: %s", result.outcome, extra={"verification_id": verification_id})
        if result.outcome in ("not_pending", "expired"):
            raise not_pending(result.verification)
        return result.verification, result.outcome == "approved"

    def cancel(self, verification_id: str, reason: str = "canceled by the client") -> Verification:
        result = self.store.finish(verification_id, CANCELED, reason=reason)
        if result.outcome == "not_found":
            raise NotFound(f"No verification {verification_id}.")
        if result.outcome in ("not_pending", "expired"):
            raise not_pending(result.verification)
        log.info("verification canceled", extra={"verification_id": verification_id})
        return result.verification


def not_pending(verification: Verification) -> Conflict:
    conflict = Conflict(f"The verification is {verification.status}; only a pending verification can change.",
                        code="not_pending", status=verification.status)
    # The state the scripts answered with, so a caller shaping its own error needs no second read.
    conflict.verification = verification
    return conflict
