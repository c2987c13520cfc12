"""What the tests need, real and local: a redis-server, a Celery worker, and a Twilio stand-in."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis
from celery import Celery
from werkzeug.serving import WSGIRequestHandler, make_server

import web
from tests.twilio_stub import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, TwilioStub
from verification.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
CODE_HASH_SECRET = "test-code-hash-secret"
API_KEY = "test-api-key-0123456789"


class Worker:
    """A real `celery -A tasks worker` process, its output in a log file."""

    def __init__(self, env: dict, log_path: Path, concurrency: int = 2, args: tuple[str, ...] = ()):
        self.env = env
        self.log_path = log_path
        self.concurrency = concurrency
        self.args = tuple(args)  # more worker options, e.g. ("--beat", "--schedule", path)
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> "Worker":
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-l", "info",
                 "-c", str(self.concurrency), "-n", f"test-{uuid.uuid4().hex[:8]}@%h",
                 "--without-mingle", "--without-gossip", *self.args],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()[-3000:]}")
            if " ready." in self.log()[offset:]:
                return self
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready in {timeout}s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        """SIGTERM is Celery's warm shutdown; SIGKILL kills the whole process group at once."""
        if not self.process or self.process.poll() is not None:
            return
        if sig == signal.SIGKILL:
            os.killpg(self.process.pid, signal.SIGKILL)
        else:
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if sig == signal.SIGKILL:
            try:  # the pool's children, which SIGKILL of the parent leaves behind
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def twilio_server():
    stub = TwilioStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def twilio(twilio_server):
    twilio_server.reset()
    yield twilio_server
    twilio_server.reset()


@pytest.fixture(scope="session")
def service_env(redis_server, twilio_server) -> dict:
    """The settings shared by the web app and the worker in tests."""
    return {
        "REDIS_URL": f"{redis_server.url}/0",
        # The broker has a database of its own, so flushing state between tests leaves queues alone.
        "CELERY_BROKER_URL": f"{redis_server.url}/1",
        "SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_PHONE_NUMBER": FROM_NUMBER,
        "TWILIO_API_BASE_URL": twilio_server.url,
        "TWILIO_TIMEOUT_SECONDS": "5",
        "CODE_HASH_SECRET": CODE_HASH_SECRET,
        "API_KEYS": API_KEY,
    }


@pytest.fixture(scope="session")
def worker_env(service_env) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VERIFICATION_", "TWILIO_", "CELERY_"))}
    env.update(service_env)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# The shared worker, once a test has started it: it serves every later test's shared broker too.
_shared_worker: list[Worker] = []


@pytest.fixture(scope="session")
def worker(worker_env, tmp_path_factory):
    process = Worker(worker_env, tmp_path_factory.mktemp("worker") / "worker.log").start()
    _shared_worker.append(process)
    yield process
    _shared_worker.clear()
    process.stop()


@pytest.fixture
def own_worker(worker_env, tmp_path):
    """A worker of the test's own, for tests that stop, kill or restart it."""
    process = Worker(worker_env, tmp_path / "worker.log")
    yield process
    process.stop(signal.SIGKILL)


def celery_for(broker_url: str) -> Celery:
    """A Celery app like tasks.app that publishes to `broker_url`, for a web app under test."""
    app = Celery("verification")
    app.config_from_object("celeryconfig")
    app.conf.broker_url = broker_url
    return app


def build_app(settings: dict, celery: Celery):
    """The web app with these settings, queueing its tasks through `celery`."""
    app = web.create_app({**settings, "CELERY_APP": celery})
    app.config["TESTING"] = True
    return app


@pytest.fixture(scope="session")
def celery_app(service_env):
    return celery_for(service_env["CELERY_BROKER_URL"])


@pytest.fixture
def state(service_env) -> redis.Redis:
    """The state database, emptied before each test that uses it."""
    connection = redis.Redis.from_url(service_env["REDIS_URL"], decode_responses=True)
    connection.flushdb()
    yield connection
    if _shared_worker:
        # The shared worker may still owe this test an SMS, even a test that did not ask for it (its
        # start queued a send on the shared broker): let it land now, not in the next test's Twilio
        # stub, where a test waiting on the same number would read a stale code.
        with redis.Redis.from_url(service_env["CELERY_BROKER_URL"], decode_responses=True) as broker:
            _wait_for_sends_to_settle(connection, broker)
    connection.close()


def _wait_for_sends_to_settle(connection: redis.Redis, broker: redis.Redis, timeout: float = 10) -> None:
    """Until no send is under way and none the shared worker will still run finds a queued verification."""

    def settled() -> bool:
        sends = [connection.hmget(key, "status", "send") for key in connection.scan_iter("verif:{*}:state")]
        if ["pending", "sending"] in sends:
            return False
        return ["pending", "queued"] not in sends or not _send_tasks_waiting(broker)

    deadline = time.monotonic() + timeout
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.05)


def _send_tasks_waiting(broker: redis.Redis) -> bool:
    """Whether a send task is queued on the shared broker, or held by a worker that has not acked it."""
    messages = broker.lrange("celery", 0, -1) + broker.hvals("unacked")
    return any('"verification.send_challenge"' in message for message in messages)


@pytest.fixture
def make_app(service_env, celery_app, state):
    def make(**overrides):
        return build_app({**service_env, **overrides}, celery_app)

    return make


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {API_KEY}"
    return client


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


@contextlib.contextmanager
def serving(app, quiet: bool = True):
    """The app on a real threaded HTTP server on a free loopback port; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True,
                         request_handler=_QuietHandler if quiet else WSGIRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def code_in(message) -> str:
    return re.search(r"[0-9]{4,10}", message.body).group(0)


def wrong_code(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


def wait_for(predicate, timeout: float = 10, interval: float = 0.05):
    """Poll until `predicate()` is truthy; returns its value or fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)
