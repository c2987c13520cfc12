"""Crashes and restarts: workers killed or stopped, Redis restarted, countdown tasks lost."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest
import redis

import web
from tests.conftest import code_in, wait_for, wrong_code
from tests.isolated import authorized, celery_for, iso_app, iso_celery, iso_env, workers  # noqa: F401
from verification import keys
from verification.dispatch import CeleryDispatcher
from verification.redis_server import RedisServer
from verification.store import Store, script_source

PHONE = "+14155550142"
pytestmark = pytest.mark.slow


def start(client, phone=PHONE) -> dict:
    response = client.post("/v1/verifications", json={"phone": phone})
    assert response.status_code == 202, response.json
    return response.json


def status_in_redis(connection, verification_id: str) -> str | None:
    """Straight from the hash: a GET would expire an overdue verification itself."""
    return connection.hget(keys.state(verification_id), "status")


def unacked_older_than(broker: redis.Redis, seconds: float) -> bool:
    """Whether every unacknowledged message was delivered at least `seconds` ago."""
    scores = [score for _, score in broker.zrange("unacked_index", 0, -1, withscores=True)]
    return bool(scores) and time.time() - max(scores) > seconds


def test_sigkill_while_twilio_answers_sends_one_sms(iso_env, iso_app, workers, twilio, state):
    """The worker dies between Twilio accepting and the ledger recording it."""
    first = workers()
    client = authorized(iso_app(VERIFICATION_WINDOW_SECONDS=60))
    twilio.delay = 2
    body = start(client)
    twilio.wait_for_requests(1)
    first.stop(signal.SIGKILL)
    message = twilio.wait_for_message(PHONE)  # Twilio accepted it; nobody heard the answer
    record = state.hgetall(keys.state(body["id"]))
    assert record["send"] == "sending" and record["hash"]

    # A worker that hands back messages unacked for 3 s redelivers the send (the window is longer).
    with redis.Redis.from_url(iso_env["CELERY_BROKER_URL"]) as broker:
        wait_for(lambda: unacked_older_than(broker, 3.5), timeout=15)
    twilio.delay = 0
    second = workers(CELERY_VISIBILITY_TIMEOUT=3)
    wait_for(lambda: "pending/sending" in second.log(), timeout=20)  # the redelivered send skipped
    assert len(twilio.requests) == 1
    assert len(twilio.messages_to(PHONE)) == 1

    checked = client.post(body["links"]["check"], json={"code": code_in(message)})
    assert checked.json["approved"] is True


def test_pool_child_killed_mid_send_is_redelivered_and_skips(iso_app, workers, twilio, state):
    """task_reject_on_worker_lost: the parent hands the message back at once; the ledger says `sending`."""
    worker = workers(concurrency=1)
    client = authorized(iso_app(VERIFICATION_WINDOW_SECONDS=60))
    twilio.delay = 2
    body = start(client)
    twilio.wait_for_requests(1)
    (child,) = children(worker.process.pid)
    os.kill(child, signal.SIGKILL)
    message = twilio.wait_for_message(PHONE)
    wait_for(lambda: "pending/sending" in worker.log(), timeout=20)
    twilio.delay = 0
    assert len(twilio.requests) == 1
    assert client.post(body["links"]["check"], json={"code": code_in(message)}).json["approved"] is True


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def test_warm_shutdown_loses_no_queued_task(iso_env, iso_app, workers, twilio, state):
    """SIGTERM hands back the countdown tasks it held; sends queued while no worker runs go out later."""
    client = authorized(iso_app(VERIFICATION_WINDOW_SECONDS=10))
    before = [f"+1415555{n:04d}" for n in range(150, 153)]
    after = [f"+1415555{n:04d}" for n in range(160, 163)]
    first = workers()
    ids = [start(client, phone)["id"] for phone in before]
    for phone in before:
        twilio.wait_for_message(phone)
    with redis.Redis.from_url(iso_env["CELERY_BROKER_URL"], decode_responses=True) as broker:
        # The worker holds the three countdowns in memory only (verification/countdowns.py)...
        wait_for(lambda: broker.llen("celery") == 0 and broker.hlen("unacked") == 0)
        first.stop(signal.SIGTERM)
        assert first.process.returncode == 0
        # ...and a warm shutdown sends them back, each with its id and deadline.
        back = [json.loads(raw) for raw in broker.lrange("celery", 0, -1)]
    assert sorted(json.loads(m["body"])[0][0] for m in back) == sorted(ids)
    assert {m["headers"]["task"] for m in back} == {"verification.expire"}
    for m in back:
        deadline = int(state.hget(keys.state(json.loads(m["body"])[0][0]), "expires")) / 1000
        assert abs(datetime.fromisoformat(m["headers"]["eta"]).timestamp() - deadline) < 1

    ids += [start(client, phone)["id"] for phone in after]
    assert len(twilio.requests) == 3  # no worker, no SMS
    workers()
    for phone in after:
        twilio.wait_for_message(phone)
    # The countdown tasks expire all six (no beat here, and no read that would expire them lazily).
    wait_for(lambda: all(status_in_redis(state, i) == "expired" for i in ids), timeout=30)
    assert sorted(m.to for m in twilio.messages) == sorted(before + after)


class NoExpiry(CeleryDispatcher):
    """Loses every countdown task, as a worker killed while holding them would: a start sends its SMS only."""

    def with_start(self, verification_id: str, countdown: float) -> None:
        return None

    def new_verification(self, verification_id: str, countdown: float) -> None:
        self.send_challenge(verification_id)


def test_sweep_expires_what_no_countdown_task_will(iso_app, iso_celery, workers, twilio, state):
    app = iso_app(VERIFICATION_WINDOW_SECONDS=2)
    app.extensions["verification"].dispatcher = NoExpiry(iso_celery)
    client = authorized(app)
    state.zadd(keys.DEADLINES, {"gone-already": 1})  # an id whose record vanished
    workers(beat=True, sweep_seconds=1)
    body = start(client)
    twilio.wait_for_message(PHONE)
    wait_for(lambda: status_in_redis(state, body["id"]) == "expired", timeout=20)
    assert [e["e"] for e in events(state, body["id"])][-1] == "expired"
    wait_for(lambda: state.zcard(keys.DEADLINES) == 0, timeout=10)


def events(connection, verification_id: str) -> list[dict]:
    return Store(connection, 0).events(verification_id)


def script_sha(name: str) -> str:
    return hashlib.sha1(script_source(name).encode()).hexdigest()


@pytest.fixture
def aof_redis(tmp_path):
    server = RedisServer(tmp_path / "aof", appendonly=True).start()
    yield server
    server.stop()


def test_redis_restart_mid_flight(aof_redis, iso_env, workers, twilio, tmp_path):
    """503 while Redis is down; afterwards the worker is back, the scripts reload, the pending
    verification approves, and the countdown task the worker held is still honoured (by the sweep)."""
    urls = {"REDIS_URL": f"{aof_redis.url}/0", "CELERY_BROKER_URL": f"{aof_redis.url}/1"}
    worker = workers(beat=True, sweep_seconds=1, **urls)
    celery = celery_for(urls["CELERY_BROKER_URL"])
    config = {k: iso_env[k] for k in ("SMS_BACKEND", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN",
                                      "TWILIO_PHONE_NUMBER", "TWILIO_API_BASE_URL", "CODE_HASH_SECRET",
                                      "API_KEYS")}
    client = authorized(web.create_app({**config, **urls, "VERIFICATION_WINDOW_SECONDS": 60, "CELERY_APP": celery}))
    short = authorized(web.create_app({**config, **urls, "VERIFICATION_WINDOW_SECONDS": 6, "CELERY_APP": celery}))
    state = redis.Redis.from_url(urls["REDIS_URL"], decode_responses=True)

    held = start(short, "+14155550143")  # its countdown task waits in the worker's memory
    pending = start(client)
    code = code_in(twilio.wait_for_message(PHONE))
    twilio.wait_for_message("+14155550143")
    wait_for(lambda: client.get(pending["links"]["self"]).json["sendStatus"] == "sent")
    assert client.post(pending["links"]["check"], json={"code": wrong_code(code)}).json["attemptsRemaining"] == 3

    mark = len(worker.log())
    aof_redis.stop()  # SIGTERM: Redis writes its AOF out before it exits
    for response in (client.get(pending["links"]["self"]),
                     client.post(pending["links"]["check"], json={"code": code}),
                     client.post("/v1/verifications", json={"phone": "+14155550144"}),
                     client.get("/readyz")):
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        assert response.is_json
    wait_for(lambda: "Cannot connect to redis" in worker.log()[mark:], timeout=20)

    aof_redis.start()
    assert state.script_exists(script_sha("check")) == [False]  # a restart empties the script cache
    wait_for(lambda: "Connected to redis" in worker.log()[mark:], timeout=20)
    assert worker.process.poll() is None

    checked = client.post(pending["links"]["check"], json={"code": code})
    assert checked.status_code == 200
    assert checked.json["approved"] is True
    assert checked.json["attemptsRemaining"] == 3  # the answer during the outage cost nothing
    assert state.script_exists(script_sha("check")) == [True]

    wait_for(lambda: status_in_redis(state, held["id"]) == "expired", timeout=30)

    # The worker's own scripts (claim_send, record_send) reload too: a new verification goes through.
    fresh = start(client, "+14155550145")
    code = code_in(twilio.wait_for_message("+14155550145"))
    assert client.post(fresh["links"]["check"], json={"code": code}).json["approved"] is True
    state.close()


@pytest.mark.parametrize("how", ["SIGTERM", "remote shutdown"])
def test_a_countdown_due_while_the_worker_stops_is_handed_back(how, iso_env, iso_app, iso_celery, workers,
                                                              twilio, state):
    """A warm shutdown waits for a running send; a countdown that falls due meanwhile is not run (the
    pool is closing) and not lost: it goes back to the queue with the rest (verification/countdowns.py)."""
    client = authorized(iso_app(VERIFICATION_WINDOW_SECONDS=3))
    worker = workers()
    due = start(client, "+14155550171")
    twilio.wait_for_message("+14155550171")
    twilio.delay = 5  # the next send holds the pool past the first one's deadline
    start(client, "+14155550172")
    wait_for(lambda: len(twilio.requests) == 2)
    if how == "SIGTERM":
        worker.stop(signal.SIGTERM)
    else:
        iso_celery.control.shutdown()  # `celery control shutdown`: no signal, no state flags
        worker.process.wait(30)
    assert worker.process.returncode == 0
    with redis.Redis.from_url(iso_env["CELERY_BROKER_URL"], decode_responses=True) as broker:
        back = [json.loads(raw) for raw in broker.lrange("celery", 0, -1)]
    assert due["id"] in [json.loads(m["body"])[0][0] for m in back if m["headers"]["task"] == "verification.expire"]
    workers()
    wait_for(lambda: status_in_redis(state, due["id"]) == "expired", timeout=15)


def test_a_malformed_countdown_is_refused_and_the_worker_carries_on(iso_env, iso_app, iso_celery, workers, twilio, state):
    worker = workers()
    iso_celery.send_task("verification.expire", args=["nope"], headers={"eta": "not-a-date"})
    client = authorized(iso_app(VERIFICATION_WINDOW_SECONDS=2))
    body = start(client, "+14155550173")
    twilio.wait_for_message("+14155550173")
    wait_for(lambda: status_in_redis(state, body["id"]) == "expired", timeout=15)
    assert worker.process.poll() is None
    assert "invalid ETA" in worker.log() and "Unrecoverable error" not in worker.log()


def test_countdowns_survive_a_lost_broker_connection(iso_env, iso_app, workers, twilio, state):
    """Celery clears its timers when its broker connection drops; the countdowns go back to the queue
    when it reconnects, and still expire their verifications on time (no beat here, no reads)."""
    client = authorized(iso_app(VERIFICATION_WINDOW_SECONDS=6))
    worker = workers()
    body = start(client, "+14155550174")
    twilio.wait_for_message("+14155550174")
    mark = len(worker.log())
    with redis.Redis.from_url(iso_env["CELERY_BROKER_URL"]) as broker:
        broker.client_kill_filter(_type="normal", skipme=True)
    wait_for(lambda: "countdowns handed back to the broker: 1" in worker.log()[mark:], timeout=20)
    wait_for(lambda: status_in_redis(state, body["id"]) == "expired", timeout=20)


def test_a_cold_shutdown_hands_countdowns_back_too(iso_env, iso_app, workers, twilio, state):
    client = authorized(iso_app(VERIFICATION_WINDOW_SECONDS=30))
    worker = workers()
    body = start(client, "+14155550175")
    twilio.wait_for_message("+14155550175")
    with redis.Redis.from_url(iso_env["CELERY_BROKER_URL"], decode_responses=True) as broker:
        wait_for(lambda: broker.hlen("unacked") == 0)  # the send has run and is acknowledged
        worker.stop(signal.SIGQUIT)  # Celery's cold shutdown: no worker_shutdown signal
        back = [json.loads(raw) for raw in broker.lrange("celery", 0, -1)]
    assert [(json.loads(m["body"])[0][0], m["headers"]["task"]) for m in back] == [(body["id"], "verification.expire")]
