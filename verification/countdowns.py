"""The expiry task's countdown, held in the worker's memory and not in Redis as well.

kombu's Redis transport keeps each message a worker holds, unacknowledged, in the broker's `unacked`
hash, so that a worker that dies hands it back. An expiry task is held for the whole window: 734 of
the ~2,050 bytes of Redis a pending verification costs (docs/benchmarks.md). Yet the deadlines index
already guarantees every expiry a worker loses (the sweep, `challenge.sweep`), and reads and checks
judge the deadline by Redis's clock themselves. So the expiry task's strategy, `held_in_memory`,
acknowledges a countdown message when it arrives and keeps only Celery's timer. What kombu did for a
worker that stops, `hand_back` does: a warm shutdown sends every timer it still held back to the
queue, with its id and ETA. A worker killed outright loses its timers, as before (kombu's copy came
back only after the visibility timeout, past the deadline): the sweep expires those verifications
within one interval.

Tied to Celery 5.6's worker (`celery.worker.strategy.default`, `Consumer.apply_eta_task`), which is
pinned; tests/test_restarts.py and tests/test_dispatch.py cover it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from celery.worker.state import task_reserved
from celery.worker.strategy import default

log = logging.getLogger(__name__)

# Countdown messages acknowledged on arrival whose timer has not fired yet, by task id.
_held: dict = {}


def _already_acknowledged(*_args, **_kwargs) -> None:
    """A request's ack and reject once its message was acknowledged on arrival: nothing is left to do."""


class _NoPrefetchSlot:
    """Celery counts a held countdown as one more message to prefetch, since it occupies a slot of
    kombu's unacknowledged window; an acknowledged one occupies none, so none is added."""

    def increment_eventually(self, n: int = 1) -> None:
        pass


class _ConsumerView:
    """The worker's consumer as Celery's default strategy sees it for a countdown acknowledged on arrival."""

    qos = _NoPrefetchSlot()

    def __init__(self, consumer):
        self._consumer = consumer

    def __getattr__(self, name):
        return getattr(self._consumer, name)

    def apply_eta_task(self, request) -> None:
        """`Consumer.apply_eta_task`, less giving back the prefetch slot that was never taken."""
        _held.pop(request.id, None)
        task_reserved(request)
        self._consumer.on_task_request(request)


def held_in_memory(task, app, consumer, **kwargs):
    """A task's strategy (`Task.Strategy`): a message with an ETA is acknowledged on arrival, then
    handled as Celery would; one without is Celery's default handling, untouched."""
    countdown = default(task, app, _ConsumerView(consumer), **kwargs)
    immediate = default(task, app, consumer, **kwargs)

    def handle(message, body, ack, reject, callbacks, **kw):
        headers = message.headers if isinstance(message.headers, dict) else {}
        if not headers.get("eta") or not headers.get("id"):
            return immediate(message, body, ack, reject, callbacks, **kw)
        ack(log, consumer.connection_errors)
        _held[headers["id"]] = message
        return countdown(message, body, _already_acknowledged, _already_acknowledged, callbacks, **kw)

    return handle


def hand_back(app) -> int:
    """Send again, with its id and ETA, every countdown this worker acknowledged and will not run.

    Returns how many went back; one that cannot (the broker is down too) is left to the sweep.
    """
    sent = 0
    while _held:
        task_id, message = _held.popitem()
        try:
            args, kwargs, _ = message.decode()
            app.send_task(message.headers["task"], args=args, kwargs=kwargs, task_id=task_id,
                          eta=datetime.fromisoformat(message.headers["eta"]))
            sent += 1
        except Exception as exc:  # noqa: BLE001 - a shutdown must finish; the sweep covers this one
            log.warning("could not hand a countdown back (%s); the sweep expires it", type(exc).__name__)
    return sent
