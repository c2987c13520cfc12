"""Prometheus figures of the web app and the worker, the /metrics route, and the worker's metrics server.

Under gunicorn (several processes) and a prefork Celery worker, each process counts in files in
PROMETHEUS_MULTIPROC_DIR, and the page sums them. The variable must be set before this module is
imported, the directory must be empty when the service starts, and the web app and the worker each
need a directory of their own (`gunicorn.conf.py` makes and empties the web's; compose gives each
container a tmpfs). Without it, each process reports only what it counted itself.
"""

from __future__ import annotations

import glob
import logging
import os

from flask import Blueprint, Response
from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram,
                               generate_latest, multiprocess, start_http_server)

from verification.model import FINAL_STATUSES

log = logging.getLogger(__name__)

STARTED = Counter("verification_started", "Verifications started.")
FINISHED = Counter("verification_finished", "Verifications that reached a final status.", ["status"])
CHECKS = Counter("verification_checks", "Codes checked, by outcome and channel.", ["outcome", "channel"])
SMS_SENDS = Counter("verification_sms_sends", "SMS send attempts in the worker, by outcome.", ["outcome"])
SMS_SEND_SECONDS = Histogram(
    "verification_sms_send_seconds", "Seconds the SMS provider took to accept or refuse a message (worker).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TIME_TO_VERIFY = Histogram(
    "verification_time_to_verify_seconds", "Seconds from start to approval.",
    buckets=(5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600),
)
RATE_LIMITED = Counter("verification_rate_limited", "Requests refused by a rate limit, by limit.", ["limit"])

# Label values known in advance start at 0, so a dashboard's rate() sees the first event.
for _status in sorted(FINAL_STATUSES):
    FINISHED.labels(_status)
for _outcome in ("sent", "retry", "failed", "skipped", "unknown"):
    SMS_SENDS.labels(_outcome)


def started() -> None:
    STARTED.inc()


def finished(status: str) -> None:
    FINISHED.labels(status).inc()


def checked(outcome: str, channel: str = "api") -> None:
    """outcome: approved | wrong | expired | not_pending | not_found | malformed."""
    CHECKS.labels(outcome, channel).inc()


def approved_after(seconds: float) -> None:
    TIME_TO_VERIFY.observe(max(seconds, 0.0))


def sms_send(outcome: str) -> None:
    """outcome: sent | retry | failed | skipped (nothing to send: not pending, or sent already)
    | unknown (no answer from Twilio: maybe sent, never retried)."""
    SMS_SENDS.labels(outcome).inc()


def sms_send_took(seconds: float) -> None:
    SMS_SEND_SECONDS.observe(seconds)


def rate_limited(limit_name: str) -> None:
    """Count one request refused by the limit `limit_name` (e.g. `starts_per_phone`)."""
    RATE_LIMITED.labels(limit_name).inc()


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class _Collector(multiprocess.MultiProcessCollector):
    """Sums the processes' files, leaving out one that a process is creating at this instant.

    A new file is empty until its creator sizes it; reading it then fails the whole scrape.
    """

    def collect(self):
        files = [path for path in glob.glob(os.path.join(self._path, "*.db")) if _size(path) > 0]
        return self.merge(files, accumulate=True)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def registry() -> CollectorRegistry:
    """The figures of every process of this service (multiprocess), or of this process alone."""
    if not multiprocess_mode():
        return REGISTRY
    collected = CollectorRegistry()
    _Collector(collected)
    return collected


def serve_worker_metrics(port: int, address: str = "0.0.0.0") -> None:
    """The worker's own metrics page, started once in the worker's main process."""
    if not multiprocess_mode():
        log.warning("PROMETHEUS_MULTIPROC_DIR is not set: the worker's metrics page shows only its main "
                    "process, not the pool's children that run the tasks")
    start_http_server(port, addr=address, registry=registry())
    log.info("worker metrics on port %d", port)


def process_exited(pid: int) -> None:
    if multiprocess_mode():
        multiprocess.mark_process_dead(pid)


bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    return Response(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)


OPENAPI_PATHS = {
    "/metrics": {
        "get": {
            "tags": ["operations"],
            "summary": "Prometheus metrics of the web app",
            "description": "The worker serves its own on WORKER_METRICS_PORT; Flower's /metrics covers Celery.",
            "operationId": "metrics",
            "x-uses-redis": False,
            "responses": {"200": {"description": "Prometheus text exposition format.",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}},
        }
    },
}
