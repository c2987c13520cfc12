"""The expiry task's countdown, held in the worker's memory and not in Redis as well.

kombu's Redis transport keeps each message a worker holds, unacknowledged, in the broker's `unacked`
hash, so that a worker that dies hands it back. An expiry task is held for the whole window: 734 of
the ~2,050 bytes of Redis a pending verification cost (docs/benchmarks.md). Yet the deadlines index
already guarantees every expiry a worker loses (the sweep, `challenge.sweep`), and reads and checks
judge the deadline by Redis's clock themselves; kombu's copy came back only after the visibility
timeout, past the deadline. So the expiry task's strategy, `held_in_memory`, lets Celery's default
strategy handle a countdown and acknowledges its message once Celery has scheduled it: a message
Celery refuses (malformed, revoked, an ETA it cannot read) is rejected as before.

What kombu did for a worker that stops holding its messages, `hand_back` does, sending every
countdown still held back to the queue with its id, ETA and retries, in one round trip:
- at a shutdown, warm, cold or remote (`celery control shutdown`): timers that fall due while the
  worker stops are not run (the pool is closing) but kept for the hand-back, which runs when the
  worker has stopped, or at exit;
- when the consumer starts again after a lost broker connection, which cleared Celery's timers (not
  when a pool restart rebuilds the strategies: its timers are intact).
A worker killed outright loses them, as it did, and so does a pool process killed while running
one; the sweep expires those verifications within one interval.

Tied to Celery 5.6's worker (`celery.worker.strategy.default`, `Consumer.apply_eta_task`, the
timer's `call_at`), which is pinned; tests/test_restarts.py and tests/test_dispatch.py cover it.
"""

from __future__ import annotations

import atexit
import logging

from celery.bootsteps import RUN
from celery.worker import state as worker_state
from celery.worker.state import task_reserved
from celery.worker.strategy import default

log = logging.getLogger(__name__)

# Countdowns whose message was acknowledged and whose timer has not handed them to the pool, by task id.
_held: dict = {}
# The consumer's restart_count when the strategy was last built; empty before the first build.
_built_at: list = []


class _NoPrefetchSlot:
    """Celery counts a held countdown as one more message to prefetch, since an unacknowledged message
    occupies a slot of kombu's window; an acknowledged one occupies none, so none is added."""

    def increment_eventually(self, n: int = 1) -> None:
        pass


class _Timer:
    """The consumer's timer as the strategy sees it: scheduling a countdown acknowledges its message."""

    def __init__(self, timer, apply):
        self._timer = timer
        self._apply = apply

    def call_at(self, eta, fun, args=(), kwargs=None, priority=0):
        if fun == self._apply:
            (request,) = args
            # Now only this timer holds it. Celery acks and rejects a request at most once, so its
            # later ack (acks_late) and any reject are no-ops.
            request.acknowledge()
            _held[request.id] = request
        return self._timer.call_at(eta, fun, args, kwargs, priority)


class _ConsumerView:
    """The worker's consumer as Celery's default strategy sees it for a countdown acknowledged on arrival."""

    qos = _NoPrefetchSlot()

    def __init__(self, consumer):
        self._consumer = consumer
        self.timer = _Timer(consumer.timer, self.apply_eta_task)

    def __getattr__(self, name):
        return getattr(self._consumer, name)

    def apply_eta_task(self, request) -> None:
        """`Consumer.apply_eta_task`, less giving back a prefetch slot that was never taken."""
        if _stopping(self._consumer):
            return  # the worker is stopping and its pool closing: hand_back sends it again
        if _held.get(request.id) is not request:
            return  # handed back already (a copy may be held anew, and runs on its own)
        _held.pop(request.id, None)
        task_reserved(request)
        self._consumer.on_task_request(request)


def _stopping(consumer) -> bool:
    """Whether the worker is stopping: a signal sets celery.worker.state's flags (an exit code, 0 for a
    warm stop); a remote `shutdown` only stops the blueprints."""
    if any(flag is not None and flag is not False
           for flag in (worker_state.should_stop, worker_state.should_terminate)):
        return True
    controller = getattr(consumer, "controller", None)
    return any(blueprint is not None and blueprint.state != RUN
               for blueprint in (consumer.blueprint, getattr(controller, "blueprint", None)))


def held_in_memory(task, app, consumer, **kwargs):
    """A task's strategy (`Task.Strategy`): Celery's default, with a countdown acknowledged once scheduled."""
    restarts = getattr(consumer, "restart_count", None)
    if not _built_at:
        _built_at.append(restarts)
        atexit.register(hand_back, app)  # a cold shutdown sends no worker_shutdown
    elif restarts != _built_at[0]:
        # Built again at each start of the consumer: after a lost broker connection, which cleared
        # Celery's timers, hand back what they held. A pool restart rebuilds it with its timers intact.
        _built_at[0] = restarts
        hand_back(app)
    return default(task, app, _ConsumerView(consumer), **kwargs)


def hand_back(app) -> int:
    """Send again, in one round trip, every countdown this worker holds and will not run.

    Returns how many went back. If the broker cannot take them, they are left to the sweep.
    """
    requests = []
    while True:
        try:  # a timer thread (threads, gevent, solo pools) may pop one meanwhile
            requests.append(_held.popitem()[1])
        except KeyError:
            break
    if not requests:
        return 0
    try:
        with app.producer_or_acquire() as producer, producer.batch():
            for request in requests:
                app.send_task(request.name, args=request.args, kwargs=request.kwargs, task_id=request.id,
                              eta=request.eta, retries=request.request_dict.get("retries", 0),
                              producer=producer, retry=False)
    except Exception as exc:  # noqa: BLE001 - a shutdown must finish; the sweep covers these
        log.warning("could not hand %d countdowns back to the broker (%s); the sweep expires them",
                    len(requests), type(exc).__name__)
        return 0
    log.info("countdowns handed back to the broker: %d", len(requests))
    return len(requests)
