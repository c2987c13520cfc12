"""Fixtures for tests that run workers of their own: a broker database no shared worker reads."""

from __future__ import annotations

import signal

import pytest
import redis
from celery import Celery

from tests.conftest import API_KEY, Worker, build_app, celery_for

# The shared `worker` fixture consumes database 1; tests that stop, kill or restart workers queue
# their tasks here instead, so no other worker takes them.
BROKER_DB = 2


def authorized(app):
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {API_KEY}"
    return client


@pytest.fixture
def iso_env(worker_env, redis_server) -> dict:
    """The worker environment with a broker database of its own, emptied first."""
    env = dict(worker_env, CELERY_BROKER_URL=f"{redis_server.url}/{BROKER_DB}")
    with redis.Redis.from_url(env["CELERY_BROKER_URL"]) as broker:
        broker.flushdb()
    return env


@pytest.fixture
def iso_celery(iso_env) -> Celery:
    return celery_for(iso_env["CELERY_BROKER_URL"])


@pytest.fixture
def iso_app(iso_env, iso_celery, state):
    """`iso_app(**settings)`: a web app that queues on the isolated broker."""

    def make(**overrides):
        config = {k: iso_env[k] for k in _SETTINGS if k in iso_env}
        return build_app({**config, **overrides}, iso_celery)

    return make


@pytest.fixture
def workers(iso_env, tmp_path):
    """`workers(beat=False, **env)`: start a worker on the isolated broker; all are killed at the end."""
    started: list[Worker] = []

    def start(*, beat: bool = False, sweep_seconds: float = 1, concurrency: int = 2, **env) -> Worker:
        environment = {**iso_env, **{k: str(v) for k, v in env.items()}}
        args: tuple[str, ...] = ()
        if beat:
            environment["VERIFICATION_SWEEP_SECONDS"] = str(sweep_seconds)
            args = ("--beat", "--schedule", str(tmp_path / f"beat-{len(started)}"))
        worker = Worker(environment, tmp_path / f"worker-{len(started)}.log", concurrency=concurrency, args=args)
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop(signal.SIGKILL)


# The settings a web app reads (the rest of the worker environment is the OS's).
_SETTINGS = {
    "REDIS_URL", "CELERY_BROKER_URL", "SMS_BACKEND", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN",
    "TWILIO_PHONE_NUMBER", "TWILIO_API_BASE_URL", "TWILIO_TIMEOUT_SECONDS", "CODE_HASH_SECRET", "API_KEYS",
}
