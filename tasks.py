"""The Celery app and its tasks: thin wrappers that take ids and call `verification.challenge`."""

from __future__ import annotations

import functools
import os
import time

import redis
from celery import Celery, signals

from verification import challenge, countdowns, logs, metrics
from verification.config import ConfigError, Settings
from verification.dispatch import LeanRequest
from verification.sms import make_sender
from verification.store import Store, command_packer

app = Celery("verification")
app.config_from_object("celeryconfig")


def _operations_settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError:
        # Logging comes first; the worker reports the bad setting itself when it needs it.
        return Settings()


@signals.setup_logging.connect
def _setup_logging(loglevel=None, **_):
    """The worker's and beat's lines in our format (JSON in production) instead of Celery's."""
    settings = _operations_settings()
    logs.configure(logs.resolve_format(settings.LOG_FORMAT, settings.DEVELOPMENT_MODE),
                   loglevel or settings.LOG_LEVEL)


@signals.worker_ready.connect
def _serve_metrics(**_):
    # Once the pool's children exist, so none of them inherits the listening socket.
    port = _operations_settings().WORKER_METRICS_PORT
    if port:
        metrics.serve_worker_metrics(port)


@signals.worker_process_shutdown.connect
def _process_exited(pid=None, **_):
    metrics.process_exited(pid or os.getpid())


@signals.worker_shutdown.connect
def _hand_back_countdowns(**_):
    # After a warm shutdown stopped the timers: the expiry tasks this worker held, back to the queue.
    countdowns.hand_back(app)

# Bounded tries of a send Twilio refused for now (requests to Twilio, at most); the deadline bounds them too.
SEND_MAX_TRIES = 6
# Redis out of reach for a moment (a restart, a failover). Retrying a send is safe: once the ledger
# says `sending`, every later run skips, so the worst a retry does is send nothing.
_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)


@functools.lru_cache(maxsize=1)
def _runtime():
    """Built on first use in each worker process, after the fork."""
    settings = Settings.from_env()
    connection = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5,
                                      health_check_interval=30, command_packer=command_packer())
    store = Store(connection, settings.VERIFICATION_RETENTION_SECONDS)
    return settings, store, make_sender(settings)


@app.task(name="verification.send_challenge", bind=True, max_retries=None, Request=LeanRequest)
def send_challenge(self, verification_id: str) -> str:
    settings, store, sender = _runtime()
    callback = challenge.status_callback_url(settings.PUBLIC_BASE_URL, verification_id)
    try:
        return challenge.send(store, sender, settings.CODE_HASH_SECRET, verification_id,
                              tries=self.request.retries, max_tries=SEND_MAX_TRIES, status_callback=callback)
    except challenge.RetryLater as later:
        raise self.retry(countdown=later.countdown, exc=None) from None
    except _REDIS_DOWN as exc:
        if self.request.retries + 1 >= SEND_MAX_TRIES:
            raise
        raise self.retry(countdown=challenge.backoff(self.request.retries), exc=exc) from None


# Its countdown is held in the worker's memory only (verification/countdowns.py), not in Redis as well.
@app.task(name="verification.expire", bind=True, max_retries=None, Request=LeanRequest,
          Strategy="verification.countdowns:held_in_memory")
def expire(self, verification_id: str) -> str:
    _, store, _ = _runtime()
    try:
        outcome, seconds_left = challenge.expire(store, verification_id)
        if outcome != "not_due":
            # Deadlines come in bursts. Whichever expiry task runs first also expires every other
            # verification past its deadline, so the last of a burst of 1,000 waits for one task, not
            # for 999 ahead of it in the pool (docs/benchmarks.md); the rest then find theirs final.
            challenge.sweep(store)
    except _REDIS_DOWN as exc:
        if self.request.retries >= 5:
            raise  # the sweep expires it once Redis is back
        raise self.retry(countdown=challenge.backoff(self.request.retries), exc=exc) from None
    if outcome == "not_due":
        # This worker's clock ran ahead of Redis's; come back when Redis agrees.
        raise self.retry(countdown=seconds_left + 0.05)
    return outcome


@app.task(name="verification.sweep")
def sweep() -> int:
    """Celery beat runs this (celeryconfig.beat_schedule): expiry that a countdown task missed."""
    settings, store, _ = _runtime()
    expired = challenge.sweep(store)
    # Records vanish by TTL: retention after they finish, which is at most the window after they start
    # unless the expiry ran late; an hour of margin covers a late one before its index entry goes.
    horizon = settings.VERIFICATION_WINDOW_SECONDS + settings.VERIFICATION_RETENTION_SECONDS + 3600
    store.forget_created_before(int((time.time() - horizon) * 1000))
    return expired
