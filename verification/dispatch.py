"""The service's Dispatcher on Celery: two tasks, sent by name, in one round trip to the broker."""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import os
import threading
import weakref

from celery import Celery, signals
from celery.events.event import Event
from celery.utils.nodenames import anon_nodename
from celery.utils.saferepr import saferepr
from celery.utils.time import utcoffset
from celery.worker.request import Request
from kombu.exceptions import KombuError
from kombu.utils.uuid import uuid
import redis

from verification.service import Dispatcher
from verification.store import Enqueue

log = logging.getLogger(__name__)

TASKS = ("verification.send_challenge", "verification.expire")
# An expiry sent with its start is counted from before create.lua sets the deadline by Redis's clock.
_AFTER_DEADLINE = 0.05
_warned = False
# Headers of Celery's message protocol 2 that are optional, with the value a worker assumes when one
# is absent (celery/worker/request.py reads each with .get; kwargsrepr, which it would take as '',
# LeanRequest rebuilds); ignore_result then follows task_ignore_result, which is on.
_OPTIONAL_HEADERS = {"shadow": None, "expires": None, "group_index": None, "retries": 0,
                     "timelimit": [None, None], "kwargsrepr": "{}", "ignore_result": False,
                     "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {}}


@signals.before_task_publish.connect
def _lean_message(sender=None, headers=None, body=None, properties=None, **_):
    """Leave out what our two tasks' messages say by default.

    A held expiry message sits in the broker's `unacked` hash for the whole window, once per pending
    verification: this takes it from 1,044 to ~480 bytes (docs/benchmarks.md).
    """
    if sender not in TASKS:
        return
    for name, default in _OPTIONAL_HEADERS.items():
        if name in headers and headers[name] == default:
            del headers[name]
    # What a worker needs no copy of: `lang` is for consumers in other languages, `origin` (the
    # sender's host and pid) is never read, and with no parent task root_id is the id itself.
    # argsrepr and kwargsrepr (among the defaults above) are the only losses, and LeanRequest puts
    # them back on the worker.
    for name in ("lang", "origin", "argsrepr"):
        headers.pop(name, None)
    if headers.get("root_id") == headers["id"]:
        del headers["root_id"]
    if "parent_id" in headers and headers["parent_id"] is None:
        del headers["parent_id"]
    if isinstance(body, tuple) and len(body) == 3 and isinstance(body[2], dict):
        for name in [name for name, value in body[2].items() if value is None]:
            del body[2][name]  # callbacks, errbacks, chain, chord: none
    # No result backend, so nothing is ever sent to the reply queue, and nothing to correlate.
    properties.pop("reply_to", None)
    if properties.get("correlation_id") == headers["id"]:
        del properties["correlation_id"]


class LeanRequest(Request):
    """A worker's request with what `_lean_message` leaves out put back, as Celery would have sent it.

    Its "Task ... received" line and task-received event (Flower) show the args and kwargs, so the logs
    find the verification id in them; root_id is the task's own id, as for any task sent with no parent.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "argsrepr" not in self._request_dict:
            self._argsrepr = self._request_dict["argsrepr"] = saferepr(self._args)
        if "kwargsrepr" not in self._request_dict:
            self._kwargsrepr = self._request_dict["kwargsrepr"] = saferepr(self._kwargs)
        if not self._root_id:
            self._root_id = self._request_dict["root_id"] = self.id


class _Collector:
    """A kombu publish batch (kombu 5.7's interface) that keeps each message's final Redis commands.

    kombu's own Redis batch routes a message exactly as a publish would and buffers the commands that
    deliver it (`Channel._put`, `_put_fanout`: LPUSH onto the queue, PUBLISH of an event) in a
    pipeline; this one hands them to create.lua instead, which runs them with the start.
    """

    def __init__(self, channel):
        self.channel = channel
        self.commands: list[tuple[str, tuple]] = []

    def publish(self, message, **kwargs):
        return self.channel.basic_publish(message, _publish_batch=self, **kwargs)

    def add(self, name, *args):
        self.commands.append((name, args))

    def flush(self):
        pass

    def discard(self):
        self.commands.clear()

    def close(self):
        pass


class _SentEvents:
    """Celery's event sender as send_task_message uses it, holding a start's task-sent events to publish
    them as one message.

    A Celery worker sends its own task events so (EventDispatcher's `buffer_group`): a list under the
    routing key `task.multi`, which every receiver (Flower, `celery events`) reads as its events in
    order. One message for both tasks instead of one each saves a kombu publish and a PUBLISH a start
    (about 7% of a start's instructions, docs/benchmarks.md). Each event is made as
    EventDispatcher.publish makes it, on the dispatcher's clock, and published through its `_publish`,
    as its `flush` does (Celery 5.6, pinned).
    """

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher
        self.held: list[dict] = []

    def publish(self, type, fields, producer, **_retry):
        d = self.dispatcher
        self.held.append(Event(type, hostname=d.hostname, utcoffset=utcoffset(), pid=d.pid,
                               clock=d.clock.forward(), **fields))

    def flush(self, producer) -> None:
        if self.held:
            with self.dispatcher.mutex:
                self.dispatcher._publish(self.held, producer, routing_key="task.multi")


class CeleryDispatcher(Dispatcher):
    def __init__(self, celery_app: Celery, state: redis.Redis | None = None):
        self.celery = celery_app
        # The web app's state connection: when the broker is a database of the same Redis server, a
        # start's messages go in with the start itself (with_start).
        self.state = state
        # with_start's producer and event sender, made at the first start, and the lock that lets one
        # thread at a time keep and use them.
        self._builder: tuple | None = None
        self._building = threading.Lock()
        self._events = None  # new_verification's event sender, made at its first start

    def _publish(self, producer, name: str, verification_id: str, countdown: float | None = None,
                 events=None) -> None:
        """What send_task does for our two tasks, less the parts they never use (about 0.2 ms a start).

        Celery's own message (create_task_message) and publish (send_task_message), with its signals and
        task-sent event; no router (no task_routes), no AsyncResult (results are ignored), and no queue
        declaration: a task goes to the default exchange under the queue's name, which on Redis is a
        push onto the queue's list, and the worker declares its queue. A failed batch is sent again one
        by one with send_task and its retries (new_verification).
        """
        amqp = self.celery.amqp
        task_id = uuid()
        message = amqp.create_task_message(
            task_id, name, [verification_id], {}, countdown=countdown, root_id=task_id,
            create_sent_event=events is not None, argsrepr=repr([verification_id]), kwargsrepr="{}",
            # What Celery would work out again for each message: the time a countdown counts from
            # (app.now() converts it through the app's zone, which an ETA with its offset does not
            # need), and this process's name (`origin`, which _lean_message drops).
            now=datetime.datetime.now(datetime.timezone.utc) if countdown else None, origin=_origin(os.getpid()))
        amqp.send_task_message(producer, name, message, declare=[], retry=False, event_dispatcher=events)

    def _publish_both(self, producer, verification_id: str, countdown: float, events=None) -> bool:
        """A start's two tasks and one message of their task-sent events (_SentEvents) in one kombu publish
        batch: sent as one pipeline, or kept (with_start). Whether there were events
        (`task_send_sent_event`, read once here: a read of a Celery setting runs ~20,000 instructions).

        `events` is the event sender to make the events with; None, one kept for this.
        """
        if events is None:
            # as Celery's own (amqp._event_dispatcher): publish is called with the producer given
            events = self._events = self._events or self.celery.events.Dispatcher(enabled=False)
        sent = _SentEvents(events) if self.celery.conf.task_send_sent_event else None
        with producer.batch():
            self._publish(producer, TASKS[0], verification_id, events=sent)
            self._publish(producer, TASKS[1], verification_id, countdown, events=sent)
            if sent is not None:
                sent.flush(producer)
        return sent is not None

    def _start_builder(self):
        """(producer, event sender, broker db for create.lua or None) for with_start: made once per process,
        the first time it is needed.

        with_start only builds messages (the collector keeps the commands that would deliver them), so
        its producer needs a channel and, after the connection's first command, never talks to Redis.
        Kept, it saves what the producer pool does at every acquire: a connection from the pool, the
        producer revived on it, its exchange bound (about a tenth of building a start's messages).
        The event sender is the one Celery makes for send_task_message, with its exchange bound once:
        kombu binds an unbound exchange before every declare check, to a copy that it then drops
        (`kombu.common._maybe_declare`), another tenth. Made outside the lock, so threads that find the
        broker out of reach wait for its timeout side by side, not one after another.
        """
        if self._builder is not None:
            return self._builder
        connection = self.celery.connection_for_write()
        try:
            producer = self.celery.amqp.Producer(connection)
            channel = producer.channel  # connects: a broker out of reach fails here, and nothing is kept
            events = self.celery.events.Dispatcher(enabled=False)  # as Celery's amqp._event_dispatcher
            events.exchange = events.exchange(channel)
        except BaseException:
            connection.release()
            raise
        # Whether create.lua can deliver what this channel builds: asked once, as the channel is kept.
        db = _same_server_db(channel, self.state) if getattr(channel, "supports_batch_publish", False) else None
        with self._building:
            if self._builder is None:
                self._builder = (producer, events, db)
                weakref.finalize(self, connection.release)  # closed with the dispatcher (tests make many)
                return self._builder
        connection.release()  # another thread kept its own first
        return self._builder

    def send_challenge(self, verification_id: str, producer=None) -> None:
        self.celery.send_task("verification.send_challenge", args=[verification_id], producer=producer)

    def expire_later(self, verification_id: str, countdown: float, producer=None) -> None:
        self.celery.send_task("verification.expire", args=[verification_id], countdown=countdown,
                              producer=producer)

    def with_start(self, verification_id: str, countdown: float) -> Enqueue | None:
        """Both tasks of a start, built by Celery and kombu as for a publish, for create.lua to deliver.

        The start and its messages are then one atomic step and one round trip: no verification is ever
        stored without its SMS and expiry queued, and no message is sent for a start that was refused.
        None, and new_verification sends them afterwards, when the broker is not a database of the
        state's Redis server, or kombu would not batch (e.g. `retry_on_timeout`).
        """
        try:
            producer, events, db = self._start_builder()
            if db is None:
                return None
            with self._building:
                channel = producer.channel
                collector = _Collector(channel)
                channel.create_publish_batch = lambda max_size: collector
                try:
                    # create.lua sets the deadline a moment after this: the expiry is due just after it.
                    announced = self._publish_both(producer, verification_id, countdown + _AFTER_DEADLINE, events)
                finally:
                    del channel.create_publish_batch
        except (KombuError, OSError, redis.RedisError):
            return None  # Redis out of reach: the start finds out, and answers 503
        commands = tuple((name, *args) for name, args in collector.commands)
        # The two messages, then the one of their task-sent events (none with task_send_sent_event off).
        expected = ["lpush", "lpush"] + ["publish"] * announced
        if [c[0] for c in commands] != expected or any(len(c) != 3 for c in commands):
            global _warned
            if not _warned:
                _warned = True
                log.warning("kombu routed a start's messages as %s, not %s: starts send them after storing "
                            "the verification", [c[0] for c in commands], expected)
            return None
        return Enqueue(db, commands)

    def new_verification(self, verification_id: str, countdown: float) -> None:
        # A start publishes two messages and, with task_send_sent_event, one message of their two
        # events: three round trips one by one. kombu's Producer.batch() (kombu >= 5.7, Redis transport)
        # sends them as one pipeline. Both tasks tolerate a duplicate (the send ledger, a no-op expiry),
        # so a batch whose delivery is uncertain is simply sent again one message at a time, with
        # Celery's retries (then each task has an event message of its own: four round trips).
        with self.celery.producer_or_acquire() as producer:
            if getattr(producer, "supports_batch_publish", False):
                try:
                    _one_client_per_channel(producer.channel)
                    self._publish_both(producer, verification_id, countdown)
                    return
                except KombuError as exc:
                    log.warning("batched publish failed (%s); sending one by one", type(exc).__name__,
                                extra={"verification_id": verification_id})
            self.send_challenge(verification_id, producer)
            self.expire_later(verification_id, countdown, producer)


@functools.lru_cache(maxsize=1)
def _origin(pid: int) -> str:
    """A message's `origin` header, as Celery names the sending process: made once per process."""
    return anon_nodename()


@contextlib.contextmanager
def _given_or(cached, client=None):
    yield client or cached


def _one_client_per_channel(channel) -> None:
    """Make kombu's Redis channel reuse one client instead of building one per publish batch.

    `Channel.conn_or_acquire()` makes a new `redis.Redis` over the channel's connection pool each time
    it is called without a client, and a publish batch calls it once: about 0.15 ms a start, most of it
    redis-py filling the new client's table of ~200 reply callbacks. A client is only a view of its pool
    (connections are taken from the pool per command), so one per channel does the same. Tied to
    kombu 5.7's Redis transport (pinned); a channel of another transport is left as it is.
    """
    if "conn_or_acquire" in vars(channel) or not hasattr(channel, "_create_client"):
        return
    channel.conn_or_acquire = functools.partial(_given_or, channel._create_client())


def _same_server_db(channel, state: redis.Redis | None) -> int | None:
    """The broker's database when kombu's Redis channel talks to the server `state` talks to, else None.

    Read from the connection kombu made (whatever broker settings named it): the same host, port and
    credentials over plain TCP. A key prefix (global_keyprefix) would change kombu's key names in its
    client, which create.lua would not see.
    """
    try:
        ours, theirs = state.connection_pool, channel.pool
        if (getattr(channel, "global_keyprefix", None) or ours.connection_class is not redis.Connection
                or theirs.connection_class is not redis.Connection):
            return None  # TLS, a socket, Sentinel: not worth telling apart
        a, b = ours.connection_kwargs, theirs.connection_kwargs
        if any(a.get(name) != b.get(name) for name in ("host", "port", "username", "password")):
            return None
        return int(b.get("db") or 0)
    except Exception:  # noqa: BLE001 - another transport, or no state connection: publish as usual
        return None
