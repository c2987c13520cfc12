"""What a start leaves on the broker: an expiry message the worker holds for the whole window, lean."""

import json
import time

import pytest
import redis

from tests.conftest import wait_for
from tests.isolated import authorized, iso_app, iso_celery, iso_env  # noqa: F401
from verification.dispatch import TASKS, CeleryDispatcher, _same_server_db

PHONE = "+14155550191"


def test_a_held_expiry_message_carries_the_id_and_little_else(client, worker, twilio, service_env):
    broker = redis.Redis.from_url(service_env["CELERY_BROKER_URL"], decode_responses=True)
    verification_id = client.post("/v1/verifications", json={"phone": PHONE}).json["id"]

    def held():
        # kombu's Redis transport keeps each message a worker holds in `unacked` until it is acked.
        for raw in broker.hvals("unacked"):
            message = json.loads(raw)[0]
            if message["headers"]["task"] == "verification.expire" and verification_id in message["body"]:
                return raw, message
        return None

    raw, message = wait_for(held)
    broker.close()
    headers = message["headers"]
    assert json.loads(message["body"]) == [[verification_id], {}, {}]  # JSON as it is, not base64
    assert message["properties"]["body_encoding"] is None
    assert {"task", "id", "eta"} <= set(headers)
    # Left out: what the worker never reads, or rebuilds itself (argsrepr, for its log and Flower).
    assert not {"lang", "origin", "argsrepr", "root_id", "parent_id", "retries", "timelimit"} & set(headers)
    assert "correlation_id" not in message["properties"] and "reply_to" not in message["properties"]
    # Redis stores it in its 512-byte size class; it used to be 1,044 bytes.
    assert len(raw) < 500


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


def test_a_refused_start_queues_nothing_and_announces_nothing(iso_app, iso_env):
    broker = redis.Redis.from_url(iso_env["CELERY_BROKER_URL"], decode_responses=True)
    events = broker.pubsub(ignore_subscribe_messages=True)
    events.psubscribe("*celeryev*")  # Flower's task-sent events
    client = authorized(iso_app(LIMIT_STARTS_PER_PHONE="1/minute"))
    first = client.post("/v1/verifications", json={"phone": "+14155550193"})
    refused = client.post("/v1/verifications", json={"phone": "+14155550193"})
    assert (first.status_code, refused.status_code) == (202, 429)
    assert queued(iso_env["CELERY_BROKER_URL"]) == sorted((first.json["id"], task) for task in TASKS)
    seen, deadline = [], time.monotonic() + 2
    while time.monotonic() < deadline:
        message = events.get_message(timeout=0.1)
        event = json.loads(json.loads(message["data"])["body"]) if message else {}
        if event.get("type", "").startswith("task-"):  # not a worker's heartbeat
            seen.append(event)
    events.close()
    broker.close()
    assert sorted((e["type"], e["name"], e["args"]) for e in seen) == sorted(
        ("task-sent", task, repr([first.json["id"]])) for task in TASKS)


@pytest.mark.parametrize("broker_url, options, db", [
    ("redis://127.0.0.1:7000/3", None, 3),
    ("redis://127.0.0.1:7000", None, 0),
    ("redis://127.0.0.1:7001/3", None, None),  # another server: sent after the start, as before
    ("redis://localhost:7000/3", None, None),  # the same, maybe, but not by name
    ("redis://:secret@127.0.0.1:7000/3", None, None),
    ("rediss://127.0.0.1:7000/3", None, None),
    ("redis://127.0.0.1:7000/3", {"global_keyprefix": "app:"}, None),  # kombu would rename its keys
])
def test_only_a_broker_on_the_state_server_gets_its_messages_with_the_start(broker_url, options, db):
    state = redis.Redis(host="127.0.0.1", port=7000, db=0)
    assert _same_server_db(broker_url, state, options) == db
