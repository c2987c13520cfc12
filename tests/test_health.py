"""/healthz and /readyz with Redis up, down, and back again."""

import pytest

from verification.redis_server import RedisServer


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def test_healthy_and_ready_with_redis_up(make_app, own_redis):
    client = make_app(REDIS_URL=f"{own_redis.url}/0").test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {"status": "ready", "redis": True}


def test_alive_but_not_ready_with_redis_down_and_ready_again_when_it_returns(make_app, own_redis):
    client = make_app(REDIS_URL=f"{own_redis.url}/0").test_client()
    assert client.get("/readyz").status_code == 200
    own_redis.stop()

    assert client.get("/healthz").status_code == 200
    down = client.get("/readyz")
    assert down.status_code == 503
    assert down.json == {"status": "unavailable", "redis": False}
    assert down.headers["Retry-After"] == "5"

    own_redis.start()
    assert client.get("/readyz").status_code == 200


def test_no_key_is_needed(make_app, own_redis):
    client = make_app(REDIS_URL=f"{own_redis.url}/0").test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
