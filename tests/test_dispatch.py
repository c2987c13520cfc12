"""What a start leaves on the broker: an expiry message the worker holds for the whole window, lean."""

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from tests.conftest import build_app, celery_for, code_in, wait_for
from tests.isolated import _SETTINGS as SETTINGS, BROKER_DB, authorized  # noqa: F401
from tests.isolated import iso_app, iso_celery, iso_env, workers  # noqa: F401
from verification import keys
from verification.dispatch import TASKS, CeleryDispatcher, _same_server_db, _SentEvents

PHONE = "+14155550191"


def test_an_expiry_message_is_lean_and_held_in_the_worker_alone(iso_app, iso_env, workers, twilio, state):
    broker = redis.Redis.from_url(iso_env["CELERY_BROKER_URL"], decode_responses=True)
    verification_id = authorized(iso_app(VERIFICATION_WINDOW_SECONDS=3)).post(
        "/v1/verifications", json={"phone": PHONE}).json["id"]
    (raw,) = [raw for raw in broker.lrange("celery", 0, -1) if '"verification.expire"' in raw]
    message = json.loads(raw)
    headers = message["headers"]
    assert json.loads(message["body"]) == [[verification_id], {}, {}]  # JSON as it is, not base64
    assert message["properties"]["body_encoding"] is None
    assert {"task", "id", "eta"} <= set(headers)
    # Left out: what the worker never reads, or rebuilds itself (argsrepr, for its log and Flower).
    assert not {"lang", "origin", "argsrepr", "root_id", "parent_id", "retries", "timelimit"} & set(headers)
    assert "correlation_id" not in message["properties"] and "reply_to" not in message["properties"]
    assert len(raw) < 480  # about 1,000 bytes before _lean_message

    # A worker acknowledges it on arrival and keeps the timer: kombu's `unacked` hash, which holds
    # every message a worker holds, has no copy of it for the window (verification/countdowns.py).
    workers()
    twilio.wait_for_message(PHONE)
    wait_for(lambda: broker.llen("celery") == 0 and broker.hlen("unacked") == 0)
    assert state.hget(keys.state(verification_id), "status") == "pending"
    assert broker.zcard("unacked_index") == 0
    # Its timer still expires it on time: no beat runs here, and nothing reads it.
    wait_for(lambda: state.hget(keys.state(verification_id), "status") == "expired", timeout=10)
    broker.close()


def test_a_start_publishes_both_tasks_without_building_a_redis_client(iso_celery, iso_env, monkeypatch):
    """kombu would build a redis.Redis for every publish batch (~0.15 ms a start); the dispatcher's
    channel keeps one, and every start still queues both of its tasks."""
    dispatcher = CeleryDispatcher(iso_celery)
    dispatcher.new_verification("warm", 60)  # the channel's one client is built here
    built = []
    original = redis.Redis.__init__

    def counting(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counting)
    for n in range(3):
        dispatcher.new_verification(f"id{n}", 60)
    monkeypatch.undo()
    assert built == []
    with iso_celery.producer_or_acquire() as producer:
        # kombu's other paths ask with client= as a keyword (Channel._delete), or pass their own.
        with producer.channel.conn_or_acquire(client=None) as cached, producer.channel.conn_or_acquire() as again:
            assert cached is again
    with redis.Redis.from_url(iso_env["CELERY_BROKER_URL"], decode_responses=True) as broker:
        messages = [json.loads(raw) for raw in broker.lrange("celery", 0, -1)]
    sent = sorted((json.loads(m["body"])[0][0], m["headers"]["task"]) for m in messages)
    assert sent == sorted((vid, task) for vid in ("warm", "id0", "id1", "id2") for task in TASKS)


def queued(broker_url: str) -> list[tuple[str, str]]:
    """(verification id, task) of every message waiting on the broker's default queue."""
    with redis.Redis.from_url(broker_url, decode_responses=True) as broker:
        messages = [json.loads(raw) for raw in broker.lrange("celery", 0, -1)]
    return sorted((json.loads(m["body"])[0][0], m["headers"]["task"]) for m in messages)


def test_a_start_stores_and_queues_in_one_step(iso_app, iso_env, monkeypatch):
    """With the broker on the state's server, create.lua pushes both messages kombu built: nothing is sent
    after the start, so no verification is ever stored without its SMS and expiry queued."""

    def after(*_):
        raise AssertionError("sent after the start")

    monkeypatch.setattr(CeleryDispatcher, "new_verification", after)
    response = authorized(iso_app()).post("/v1/verifications", json={"phone": "+14155550192"})
    assert response.status_code == 202
    assert queued(iso_env["CELERY_BROKER_URL"]) == sorted((response.json["id"], task) for task in TASKS)


def sent_events(broker_url: str, start) -> list[tuple[str, object]]:
    """(routing key, body) of each task event message published while `start()` runs."""
    with redis.Redis.from_url(broker_url, decode_responses=True) as broker:
        events = broker.pubsub(ignore_subscribe_messages=True)
        events.psubscribe(f"/{BROKER_DB}.celeryev/*")  # this test's broker only: pub/sub spans databases
        events.get_message(timeout=1)  # the subscription is in place
        start()
        seen, deadline = [], time.monotonic() + 1
        while time.monotonic() < deadline:
            message = events.get_message(timeout=0.1)
            if message and "/task." in message["channel"]:  # not a worker's heartbeat
                seen.append((message["channel"].rsplit("/", 1)[1], json.loads(json.loads(message["data"])["body"])))
        events.close()
    return seen


def test_a_refused_start_queues_nothing_and_announces_nothing(iso_app, iso_env):
    client = authorized(iso_app(LIMIT_STARTS_PER_PHONE="1/minute"))
    responses = []
    seen = sent_events(iso_env["CELERY_BROKER_URL"], lambda: responses.extend(
        client.post("/v1/verifications", json={"phone": "+14155550193"}) for _ in range(2)))
    first, refused = responses
    assert (first.status_code, refused.status_code) == (202, 429)
    assert queued(iso_env["CELERY_BROKER_URL"]) == sorted((first.json["id"], task) for task in TASKS)
    # One message of both task-sent events, as a list: how a worker sends its own (`task.multi`).
    [(routing_key, both)] = seen
    assert routing_key == "task.multi"
    assert [(e["type"], e["name"], e["args"]) for e in both] == [
        ("task-sent", task, repr([first.json["id"]])) for task in TASKS]


class Capture:
    """A producer that keeps what an event sender publishes with it."""

    def publish(self, body, **_):
        self.body = body


@pytest.mark.parametrize("path", ["with the start", "after the start"])
def test_a_start_announces_both_tasks_in_one_event_message(iso_app, iso_env, iso_celery, monkeypatch, path):
    """Both task-sent events go in one message, a list under `task.multi` as a worker sends its own, when
    create.lua queues the start's messages and when they are sent after it (a broker elsewhere)."""
    if path == "after the start":
        monkeypatch.setattr(CeleryDispatcher, "with_start", lambda *_: None)
    ids = []
    seen = sent_events(iso_env["CELERY_BROKER_URL"], lambda: ids.append(
        authorized(iso_app()).post("/v1/verifications", json={"phone": "+14155550197"}).json["id"]))
    [(routing_key, both)] = seen
    assert routing_key == "task.multi"
    assert [(e["type"], e["name"], e["args"], e["kwargs"]) for e in both] == [
        ("task-sent", task, repr(ids), "{}") for task in TASKS]
    queued_ids = {json.loads(raw)["headers"]["task"]: json.loads(raw)["headers"]["id"]
                  for raw in redis.Redis.from_url(iso_env["CELERY_BROKER_URL"]).lrange("celery", 0, -1)}
    assert [e["uuid"] for e in both] == [queued_ids[task] for task in TASKS]
    send, expire = both
    assert send["eta"] is None and expire["eta"].endswith("+00:00")  # the expiry's countdown, as its message has it
    assert all((e["queue"], e["exchange"], e["routing_key"]) == ("celery", "", "celery") for e in both)
    assert send["clock"] < expire["clock"]

    # Each event has what Celery's own sender would have put in it.
    made_by_celery = Capture()
    own = ("type", "hostname", "utcoffset", "pid", "clock", "timestamp")
    iso_celery.events.Dispatcher(enabled=False).publish(
        "task-sent", {k: v for k, v in expire.items() if k not in own}, made_by_celery)
    assert made_by_celery.body.keys() == expire.keys()
    assert {k: expire[k] for k in ("type", "hostname", "utcoffset", "pid")} == {
        k: made_by_celery.body[k] for k in ("type", "hostname", "utcoffset", "pid")}


def test_a_held_event_is_made_as_celerys_own_sender_makes_it(iso_celery):
    """_SentEvents makes each event with its dispatcher's hostname, pid and clock, as
    EventDispatcher.publish does, and holds it until flushed."""
    dispatcher = iso_celery.events.Dispatcher(enabled=False, hostname="web@held-test")
    fields = {"uuid": "t1", "name": "verification.expire", "args": "['v']", "kwargs": "{}"}
    held = _SentEvents(dispatcher)
    held.publish("task-sent", dict(fields), None, retry=False, retry_policy=None)
    celerys = Capture()
    dispatcher.publish("task-sent", dict(fields), celerys)
    [event] = held.held
    assert event.keys() == celerys.body.keys()
    assert {k: event[k] for k in ("type", "hostname", "pid", "utcoffset", *fields)} == {
        k: celerys.body[k] for k in ("type", "hostname", "pid", "utcoffset", *fields)}
    assert event["hostname"] == "web@held-test"
    assert event["clock"] < celerys.body["clock"]  # the same clock, forwarded by each


def test_with_task_sent_events_off_a_start_announces_nothing(iso_app, iso_env, iso_celery, monkeypatch):
    iso_celery.conf.task_send_sent_event = False

    def after(*_):
        raise AssertionError("sent after the start")

    monkeypatch.setattr(CeleryDispatcher, "new_verification", after)  # create.lua still queues them
    response = []
    seen = sent_events(iso_env["CELERY_BROKER_URL"], lambda: response.append(
        authorized(iso_app()).post("/v1/verifications", json={"phone": "+14155550198"})))
    assert response[0].status_code == 202
    assert seen == []
    assert queued(iso_env["CELERY_BROKER_URL"]) == sorted((response[0].json["id"], task) for task in TASKS)


def test_starts_build_their_messages_with_one_kept_producer(iso_app, iso_env, iso_celery, monkeypatch):
    """A start builds its messages with a producer the dispatcher keeps, not one from kombu's pool (every
    acquire revives one: about a tenth of building them), one thread at a time: concurrent starts
    each queue their own two tasks."""
    app = iso_app()
    first = authorized(app).post("/v1/verifications", json={"phone": "+14152000100"})
    assert first.status_code == 202

    def from_the_pool(*_, **__):
        raise AssertionError("a producer from the pool")

    monkeypatch.setattr(type(iso_celery.producer_pool), "acquire", from_the_pool)
    phones = [f"+141520001{n:02d}" for n in range(1, 13)]
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda phone: authorized(app).post("/v1/verifications", json={"phone": phone}),
                                  phones))
    assert [r.status_code for r in responses] == [202] * len(phones)
    ids = [first.json["id"]] + [r.json["id"] for r in responses]
    assert queued(iso_env["CELERY_BROKER_URL"]) == sorted((vid, task) for vid in ids for task in TASKS)


@pytest.mark.parametrize("broker, options, db", [
    ("{url}/3", {}, 3),
    ("{url}", {}, 0),
    ("redis://localhost:{port}/3", {}, None),  # the same server, maybe, but not by the same name
    ("{url}/3", {"global_keyprefix": "app:"}, None),  # kombu would rename its keys in its client
])
def test_only_a_broker_on_the_state_server_gets_its_messages_with_the_start(redis_server, broker, options, db):
    celery = celery_for(broker.format(url=redis_server.url, port=redis_server.port))
    celery.conf.broker_transport_options = {**celery.conf.broker_transport_options, **options}
    state = redis.Redis.from_url(f"{redis_server.url}/0")
    with celery.producer_or_acquire() as producer:
        assert _same_server_db(producer.channel, state) == db
    assert (CeleryDispatcher(celery, state).with_start("v", 60) is None) == (db is None)
    state.close()


def test_without_kombu_batches_a_start_queues_its_tasks_once_and_a_refused_one_none(iso_app, iso_env, iso_celery):
    """kombu publishes at once, not in a batch, when a retry could repeat a write (retry_on_timeout):
    then the tasks go after the start, as to a broker elsewhere, never before it nor twice."""
    iso_celery.conf.broker_transport_options = {**iso_celery.conf.broker_transport_options, "retry_on_timeout": True}
    client = authorized(iso_app(LIMIT_STARTS_PER_PHONE="1/minute"))
    first = client.post("/v1/verifications", json={"phone": "+14155550194"})
    refused = client.post("/v1/verifications", json={"phone": "+14155550194"})
    assert (first.status_code, refused.status_code) == (202, 429)
    assert queued(iso_env["CELERY_BROKER_URL"]) == sorted((first.json["id"], task) for task in TASKS)


def test_a_broker_elsewhere_gets_the_tasks_after_the_start(iso_env, iso_app, workers, twilio, state):
    """The path for a broker on another server, end to end: `localhost` names the test's Redis as
    another server would, so the tasks are sent after create.lua, and the worker still serves them."""
    broker_url = iso_env["CELERY_BROKER_URL"].replace("127.0.0.1", "localhost")
    client = authorized(build_app({**{k: iso_env[k] for k in SETTINGS if k in iso_env}}, celery_for(broker_url)))
    workers()
    first = client.post("/v1/verifications", json={"phone": "+14155550195"}).json
    twilio.wait_for_message("+14155550195")
    second = client.post("/v1/verifications", json={"phone": "+14155550195"}).json
    assert state.hget(keys.state(first["id"]), "status") == "canceled"  # superseded
    code = code_in(twilio.wait_for_message("+14155550195", count=2))
    assert client.post(second["links"]["check"], json={"code": code}).json["approved"] is True


def test_a_failover_list_of_brokers_still_starts(iso_env, iso_app, iso_celery):
    iso_celery.conf.broker_url = [iso_env["CELERY_BROKER_URL"], "redis://127.0.0.1:1/0"]
    response = authorized(iso_app()).post("/v1/verifications", json={"phone": "+14155550196"})
    assert response.status_code == 202
    assert queued(iso_env["CELERY_BROKER_URL"]) == sorted((response.json["id"], task) for task in TASKS)
