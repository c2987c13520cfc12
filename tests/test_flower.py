"""Flower sees a verification's tasks as they are sent and run, and never a code."""

import json
import re
import subprocess
import sys

import pytest
import requests

from tests.conftest import API_KEY, ROOT, code_in, wait_for
from verification.redis_server import free_port

PHONE = "+16505550350"
AUTH = ("operator", "flower-test-password")


@pytest.fixture
def flower(worker_env, tmp_path):
    port = free_port()
    env = {**worker_env, "FLOWER_BASIC_AUTH": ":".join(AUTH)}
    with open(tmp_path / "flower.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tasks", "flower", f"--port={port}", "--address=127.0.0.1"],
            cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"

    def up():
        assert process.poll() is None, (tmp_path / "flower.log").read_text()
        try:
            with requests.get(f"{base}/api/tasks", auth=AUTH, timeout=2) as response:
                return response.status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_for(up, timeout=30, interval=0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def tasks_seen(base: str) -> dict:
    with requests.get(f"{base}/api/tasks", auth=AUTH, timeout=5) as response:
        response.raise_for_status()
        return response.json()


def test_flower_shows_the_tasks_of_a_verification_and_no_code(flower, make_app, celery_app, twilio, worker):
    # Ten digits, so that no pid, port or id in Flower's JSON can look like the code by chance.
    client = make_app(VERIFICATION_CODE_LENGTH="10").test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {API_KEY}"
    # Flower sees only events sent while it listens: send harmless tasks until it has seen one.
    probes = []

    def listening():
        probes.append(celery_app.send_task("verification.expire", args=["flower-probe"]).id)
        return set(probes) & set(tasks_seen(flower))

    wait_for(listening, timeout=30, interval=0.5)

    started = client.post("/v1/verifications", json={"phone": PHONE})
    verification_id = started.json["id"]
    code = code_in(twilio.wait_for_message(PHONE))
    assert client.post(f"/v1/verifications/{verification_id}/check", json={"code": code}).json["approved"]

    def ours():
        found = {task["name"]: task for task in tasks_seen(flower).values()
                 if verification_id in (task.get("args") or "")}
        sent = found.get("verification.send_challenge", {}).get("state") == "SUCCESS"
        return found if sent and "verification.expire" in found else None

    found = wait_for(ours, timeout=20, interval=0.2)
    assert found["verification.send_challenge"]["result"] == "'sent'"
    # What the lean message left out, the worker put back: args and kwargs as Celery would show them.
    assert {(task["args"], task["kwargs"]) for task in found.values()} == {(f"['{verification_id}']", "{}")}
    assert found["verification.expire"]["state"] in {"RECEIVED", "PENDING"}  # waiting for its countdown
    # Both were shown from when they were sent: the start's one message of their task-sent events.
    assert all(task["sent"] for task in found.values())

    shown = json.dumps(tasks_seen(flower))
    for task_id in (task["uuid"] for task in found.values()):
        with requests.get(f"{flower}/api/task/info/{task_id}", auth=AUTH, timeout=5) as response:
            assert response.status_code == 200
            shown += response.text
    assert not re.search(rf"(?<![0-9.]){code}(?![0-9])", shown)
    assert PHONE not in shown


def test_flower_wants_its_password(flower):
    with requests.get(f"{flower}/api/tasks", timeout=5) as response:
        assert response.status_code == 401
