"""A bounded load test on loopback: every attempt the clients made is accounted for in Redis."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import requests

from tests.conftest import API_KEY, ROOT, code_in, wait_for, wrong_code
from tests.isolated import iso_env, workers  # noqa: F401
from verification import keys
from verification.redis_server import free_port

# Small enough for two shared cores in well under a minute; the benchmark goes bigger.
VERIFICATIONS = 1000
CLIENTS = 50

# What each verification's client does, by index modulo 5, and the status it must end in.
PLANS = {
    0: (["right"], "approved"),
    1: (["wrong", "right"], "approved"),
    2: (["wrong"] * 4 + ["late"], "max_attempts_reached"),
    3: (["wrong", "wrong", "cancel"], "canceled"),
    4: (["malformed", "wrong", "wrong", "wrong"], "pending"),
}


@dataclass
class Seen:
    """What one client saw of one verification."""

    id: str = ""
    phone: str = ""
    plan: int = 0
    answered: int = 0  # checks answered 200 (each one spent an attempt or approved)
    wrong: int = 0
    approved: int = 0
    attempts_remaining: int | None = None
    status: str = ""
    errors: list = field(default_factory=list)


@pytest.fixture
def server(iso_env, tmp_path):
    """gunicorn serving web:app on loopback, as in production but smaller."""
    port = free_port()
    env = {**iso_env, "VERIFICATION_WINDOW_SECONDS": "300", "LOG_LEVEL": "WARNING",
           "LIMIT_STARTS_PER_PHONE": "off", "LIMIT_STARTS_PER_API_KEY": "off", "LIMIT_STARTS_PER_IP": "off",
           "LIMIT_SMS_GLOBAL": "off", "LIMIT_CHECKS_PER_IP": "off"}
    with open(tmp_path / "gunicorn.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "web:app", "--bind", f"127.0.0.1:{port}", "--workers", "2",
             "--worker-class", "gthread", "--threads", "16", "--backlog", "256"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def ready():
        if process.poll() is not None:
            pytest.fail((tmp_path / "gunicorn.log").read_text()[-3000:])
        try:
            return requests.get(f"{url}/readyz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(ready, timeout=60, interval=0.2)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_load_every_attempt_is_accounted_for(server, workers, twilio, state):
    workers(concurrency=4)

    def client(number: int) -> list[Seen]:
        seen = [Seen(phone=f"+1415200{i:04d}", plan=i % 5) for i in range(number, VERIFICATIONS, CLIENTS)]
        with requests.Session() as http:
            http.headers["Authorization"] = f"Bearer {API_KEY}"
            for one in seen:
                response = http.post(f"{server}/v1/verifications", json={"phone": one.phone}, timeout=30)
                if response.status_code != 202:
                    one.errors.append(("start", response.status_code, response.text[:200]))
                    continue
                one.id = response.json()["id"]
            for one in seen:
                if one.id:
                    play(http, one, code_in(twilio.wait_for_message(one.phone, timeout=60)))
        return seen

    def play(http, one: Seen, code: str):
        base = f"{server}/v1/verifications/{one.id}"
        for step in PLANS[one.plan][0]:
            if step == "cancel":
                response = http.post(f"{base}/cancel", timeout=30)
                expected = {200}
            else:
                guess = {"right": code, "malformed": "12a4"}.get(step, wrong_code(code))
                response = http.post(f"{base}/check", json={"code": guess}, timeout=30)
                expected = {"late": {409}, "malformed": {400}}.get(step, {200})
            if response.status_code not in expected:
                one.errors.append((step, response.status_code, response.text[:200]))
                continue
            body = response.json()
            if "error" in body:
                one.status = body["error"].get("status", one.status)
                continue
            one.status, one.attempts_remaining = body["status"], body["attemptsRemaining"]
            if step != "cancel":
                one.answered += 1
                one.wrong += body["approved"] is False
                one.approved += body["approved"] is True

    with ThreadPoolExecutor(CLIENTS) as pool:
        seen = [one for part in pool.map(client, range(CLIENTS)) for one in part]

    assert [one.errors for one in seen if one.errors] == []
    assert len(seen) == VERIFICATIONS and all(one.id for one in seen)

    # Exactly one SMS per verification.
    assert Counter(m.to for m in twilio.messages) == Counter(one.phone for one in seen)

    pipe = state.pipeline(transaction=False)
    for one in seen:
        pipe.hgetall(keys.state(one.id))
    replies = pipe.execute()
    mismatches = []
    for one, record in zip(seen, replies):
        events = [value for field, value in record.items() if re.fullmatch(r"e\d+", field)]
        responses = [e for e in events if '"e":"response"' in e]
        expected_status = PLANS[one.plan][1]
        if (record["status"], one.status) != (expected_status, expected_status) \
                or int(record["attempts"]) != one.attempts_remaining \
                or len(responses) != one.answered \
                or int(record["max"]) - int(record["attempts"]) != one.wrong:
            mismatches.append((one, record, events))
    assert mismatches == []
    # And in total: the attempts Redis says were spent are the wrong answers the clients were told of.
    spent = sum(int(record["max"]) - int(record["attempts"]) for record in replies)
    assert spent == sum(one.wrong for one in seen)
    assert sum(one.approved for one in seen) == 2 * VERIFICATIONS // 5
