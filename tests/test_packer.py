"""The web app's and the worker's Redis clients pack commands with hiredis: the same bytes as redis-py's own."""

import pytest
import redis

import tasks
from tests.conftest import wrong_code
from verification.store import _HiredisPacker, command_packer

PHONE = "+14155550100"


def redis_py_packs(*args) -> bytes:
    """What redis-py's own packer (hiredis behind its Python Encoder, in redis-py 8) sends for a command."""
    return b"".join(bytes(chunk) for chunk in redis.Connection().pack_command(*args))


def packs(*args) -> bytes:
    return b"".join(_HiredisPacker().pack(*args))


@pytest.mark.parametrize("args", [
    ("EVALSHA", "5264ca73b02720a5721ec1c1efbaf7c65606a606", 3, "verif:{Px1sPr2Ak7mo3hcMCikTbg}:state",
     "verif:deadlines", "LIMITS:LIMITER/checks_per_ip/127.0.0.1/10/1/minute", "0f" * 16, 604800, "api",
     "Px1sPr2Ak7mo3hcMCikTbg", "", 10, 60),
    ("HGETALL", "verif:{x}:state"),
    ("SCRIPT LOAD", "return 1"),  # a command name of two words goes as two arguments
    ("SCRIPT", "EXISTS", "a" * 40, "b" * 40),
    (b"CLIENT SETNAME", b"web"),
    ("SET", "k", "Grüße, 検証 ✓"),  # UTF-8
    ("SET", "k", -12, 0.1, 1e100, 2**70),
    ("SET", b"k", bytearray(b"\x00\xff"), memoryview(b"ab")),
])
def test_the_same_bytes_as_redis_py(args):
    assert packs(*args) == redis_py_packs(*args)


@pytest.mark.parametrize("value", [None, True, object()])
def test_refuses_what_redis_py_refuses(value):
    with pytest.raises(redis.DataError):
        redis_py_packs("SET", "k", value)
    with pytest.raises(redis.DataError):
        packs("SET", "k", value)


def test_a_string_utf8_cannot_encode_is_refused_as_by_redis_py():
    with pytest.raises(UnicodeEncodeError):
        redis_py_packs("GET", "\udcff")
    with pytest.raises(UnicodeEncodeError):
        packs("GET", "\udcff")


def test_every_command_of_a_start_and_checks_goes_as_redis_py_would_send_it(app, client, monkeypatch):
    """The commands the service really sends, through the app's own client: the same bytes, and they work."""
    packer = app.extensions["verification"].store.redis.connection_pool.connection_kwargs["command_packer"]
    assert isinstance(packer, _HiredisPacker)
    sent = []
    pack = packer.pack
    monkeypatch.setattr(packer, "pack", lambda *args: sent.append(args) or pack(*args))

    started = client.post("/v1/verifications", json={"phone": PHONE})
    assert started.status_code == 202
    vid = started.get_json()["id"]
    checked = client.post(f"/v1/verifications/{vid}/check", json={"code": wrong_code("0000")})
    assert checked.status_code == 200
    assert checked.get_json()["attemptsRemaining"] == 3
    assert client.get(f"/v1/verifications/{vid}").get_json()["attemptsRemaining"] == 3

    # The connection's own set-up (HELLO, CLIENT SETINFO), create.lua, check.lua, the read's HGETALL.
    assert {"EVALSHA", "HGETALL"} <= {args[0] for args in sent}
    for args in sent:
        assert packs(*args) == redis_py_packs(*args)


def test_the_worker_packs_with_hiredis_too(worker_env, monkeypatch):
    for name, value in worker_env.items():
        monkeypatch.setenv(name, value)
    tasks._runtime.cache_clear()
    try:
        _settings, store, _sender = tasks._runtime()
        assert isinstance(store.redis.connection_pool.connection_kwargs["command_packer"], _HiredisPacker)
        assert store.redis.ping()
    finally:
        tasks._runtime.cache_clear()


def test_without_hiredis_redis_py_packs(monkeypatch):
    monkeypatch.setattr("verification.store.hiredis", None)
    assert command_packer() is None
