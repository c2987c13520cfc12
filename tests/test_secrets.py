"""The code lives only in the worker's memory and the SMS: not in Redis, not in any log; numbers are masked."""

import base64
import json
import logging

import pytest
import redis

from tests.conftest import API_KEY, code_in, wait_for, wrong_code
from tests.test_security import management_routes
from verification.phone import mask

PHONE = "+14155550180"


def expand(value: bytes):
    """A stored value, and whatever it holds: JSON strings, and Celery message bodies (base64)."""
    yield value
    try:
        document = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            # A kombu message: {"body": <base64>, "properties": {"body_encoding": "base64", ...}, ...}
            if isinstance(item.get("body"), str) and item.get("properties", {}).get("body_encoding") == "base64":
                yield from expand(base64.b64decode(item["body"]))
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            yield item.encode()


def everything_in_redis(server_url: str):
    """Every key and value of every database: state (0), broker queues and unacked messages (1), ..."""
    with redis.Redis.from_url(server_url) as admin:
        databases = [int(name[2:]) for name in admin.info("keyspace")]
    assert {0, 1} <= set(databases)
    for db in databases:
        with redis.Redis.from_url(f"{server_url}/{db}") as r:
            for key in r.scan_iter(count=1000):
                yield key
                kind = r.type(key).decode()
                if kind == "string":
                    values = [r.get(key)]
                elif kind == "list":
                    values = r.lrange(key, 0, -1)
                elif kind == "hash":
                    values = [part for pair in r.hgetall(key).items() for part in pair]
                elif kind == "set":
                    values = list(r.smembers(key))
                elif kind == "zset":
                    values = [member for member, _ in r.zrange(key, 0, -1, withscores=True)]
                elif kind == "stream":
                    values = [part for _, entry in r.xrange(key) for pair in entry.items() for part in pair]
                else:
                    raise AssertionError(f"unexpected {kind} at {key!r}")
                for value in values:
                    yield from expand(value)


def test_a_ten_digit_code_is_only_in_the_sms(make_app, twilio, worker, redis_server, state, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_app(VERIFICATION_CODE_LENGTH="10").test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {API_KEY}"

    body = client.post("/v1/verifications", json={"phone": PHONE}).json
    code = code_in(twilio.wait_for_message(PHONE))
    assert len(code) == 10
    wait_for(lambda: client.get(body["links"]["self"]).json["sendStatus"] == "sent")
    assert client.post(body["links"]["check"], json={"code": wrong_code(code)}).json["approved"] is False
    assert client.post(body["links"]["check"], json={"code": code}).json["approved"] is True
    # The worker's line about this send is in its log file: the file is complete for this flow.
    wait_for(lambda: mask(PHONE) in worker.log())

    stored = list(everything_in_redis(redis_server.url))
    assert any(body["id"].encode() in text for text in stored)  # the scan does see this verification
    for text in stored:
        assert code.encode() not in text
        assert API_KEY.encode() not in text

    web_lines = [f"{record.getMessage()} {vars(record)}" for record in caplog.records]
    assert any(mask(PHONE) in line for line in web_lines)  # the web app did log about this number
    worker_lines = worker.log().splitlines()
    for line in web_lines + worker_lines:
        assert code not in line
        assert PHONE not in line
        assert API_KEY not in line


def test_verification_responses_are_never_cached(make_app, state):
    app = make_app()
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {API_KEY}"
    started = client.post("/v1/verifications", json={"phone": PHONE})
    assert started.headers["Cache-Control"] == "no-store"
    verification_id = started.json["id"]
    answered = 0
    # Every management route, on a real verification: whatever answers with a resource says no-store.
    for method, url in management_routes(app, verification_id):
        response = client.open(url, method=method, json={"code": "0000"} if "check" in url else {})
        if response.status_code < 300:
            answered += 1
            assert "no-store" in response.headers.get("Cache-Control", ""), (method, url)
    assert answered >= 3


def test_durable_resources_are_never_cached(make_app, state):
    durable = pytest.importorskip("verification.durable_status")
    client = make_app().test_client()
    started = client.post(f"/api/orchestrators/{durable.ORCHESTRATOR}?code={API_KEY}", json=PHONE)
    assert started.status_code == 202, started.json
    assert started.headers["Cache-Control"] == "no-store"
    status = client.get(started.json["statusQueryGetUri"])
    assert status.status_code == 202
    assert status.headers["Cache-Control"] == "no-store"
