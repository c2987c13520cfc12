"""The Celery app and its tasks: thin wrappers that take ids and call `verification.challenge`."""

from __future__ import annotations

import functools

import redis
from celery import Celery

from verification import challenge
from verification.config import Settings
from verification.sms import make_sender
from verification.store import Store

app = Celery("verification")
app.config_from_object("celeryconfig")

# Bounded retries of a send Twilio refused for now; the deadline bounds them too.
SEND_MAX_TRIES = 6


@functools.lru_cache(maxsize=1)
def _runtime():
    """Built on first use in each worker process, after the fork."""
    settings = Settings.from_env()
    connection = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5,
                                      health_check_interval=30)
    store = Store(connection, settings.VERIFICATION_RETENTION_SECONDS)
    return settings, store, make_sender(settings)


@app.task(name="verification.send_challenge", bind=True, max_retries=None)
def send_challenge(self, verification_id: str) -> str:
    settings, store, sender = _runtime()
    try:
        return challenge.send(store, sender, settings.CODE_HASH_SECRET, verification_id,
                              tries=self.request.retries, max_tries=SEND_MAX_TRIES)
    except challenge.RetryLater as later:
        raise self.retry(countdown=later.countdown, exc=None) from None


@app.task(name="verification.expire", bind=True, max_retries=None)
def expire(self, verification_id: str) -> str:
    _, store, _ = _runtime()
    outcome, seconds_left = challenge.expire(store, verification_id)
    if outcome == "not_due":
        # This worker's clock ran ahead of Redis's; come back when Redis agrees.
        raise self.retry(countdown=seconds_left + 0.05)
    return outcome
