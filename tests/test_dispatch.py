"""What a start leaves on the broker: an expiry message the worker holds for the whole window, lean."""

import json

import redis

from tests.conftest import wait_for
from tests.isolated import iso_celery, iso_env  # noqa: F401
from verification.dispatch import TASKS, CeleryDispatcher

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
