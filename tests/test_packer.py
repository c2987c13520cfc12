"""The web app's and the worker's Redis clients pack commands with hiredis: the same bytes as redis-py's own."""

import enum

import pytest
import redis
from redis.connection import PythonRespSerializer

import tasks
from tests.conftest import wrong_code
from verification.store import _HiredisPacker, command_packer

PHONE = "+14155550100"


def redis_py_packs(*args) -> bytes:
    """What redis-py writes for a command in every version: its own RESP writer, through its Encoder."""
    chunks = PythonRespSerializer(6000, redis.Redis().get_encoder().encode).pack(*args)
    return b"".join(bytes(chunk) for chunk in chunks)


def sent_by_default(*args) -> bytes:
    """What this redis-py's connection sends without a packer of ours (hiredis's, in redis-py 8 behind its Encoder)."""
    return b"".join(bytes(chunk) for chunk in redis.Connection().pack_command(*args))


def packs(*args) -> bytes:
    return b"".join(_HiredisPacker().pack(*args))


class Level(enum.IntEnum):
    HIGH = 3


class Text(str):
    pass


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
    # Not what the service sends, but what redis-py takes: each as redis-py's Encoder makes it.
    ("SET", "k", memoryview(b"abcdef")[::2]),  # strided: hiredis alone would send its buffer, "abc"
    ("SET", "k", Level.HIGH, Text("t\u00e9xt")),  # an int subclass as its repr, a str subclass as UTF-8
])
def test_the_same_bytes_as_redis_py(args):
    assert packs(*args) == redis_py_packs(*args)


@pytest.mark.parametrize("value", [None, True, object(), [1]])
def test_refuses_what_redis_py_refuses(value):
    with pytest.raises(redis.DataError) as refused_by_redis_py:
        redis_py_packs("SET", "k", value)
    with pytest.raises(redis.DataError) as refused:
        packs("SET", "k", value)
    assert str(refused.value) == str(refused_by_redis_py.value)


def test_a_string_utf8_cannot_encode_is_refused_as_by_redis_py():
    with pytest.raises(UnicodeEncodeError):
        redis_py_packs("GET", "\udcff")
    with pytest.raises(UnicodeEncodeError):
        packs("GET", "\udcff")


def recording(store, monkeypatch) -> list:
    """The argument tuples of every command `store`'s client packs from now on."""
    packer = store.redis.connection_pool.connection_kwargs["command_packer"]
    assert isinstance(packer, _HiredisPacker)
    sent = []
    pack = packer.pack
    monkeypatch.setattr(packer, "pack", lambda *args: sent.append(args) or pack(*args))
    return sent


def assert_packed_as_redis_py_packs(sent: list) -> None:
    for args in sent:
        assert packs(*args) == redis_py_packs(*args) == sent_by_default(*args), args


def test_every_command_of_a_start_and_checks_goes_as_redis_py_would_send_it(app, client, monkeypatch):
    """The commands the service really sends, through the app's own client: the same bytes, and they work."""
    store = app.extensions["verification"].store
    sent = recording(store, monkeypatch)

    started = client.post("/v1/verifications", json={"phone": PHONE})
    assert started.status_code == 202
    vid = started.get_json()["id"]
    checked = client.post(f"/v1/verifications/{vid}/check", json={"code": wrong_code("0000")})
    assert checked.status_code == 200
    assert checked.get_json()["attemptsRemaining"] == 3
    assert client.get(f"/v1/verifications/{vid}").get_json()["attemptsRemaining"] == 3
    # A pipeline (the Durable listing reads records this way).
    assert [v.attempts_remaining for v in store.get_many([vid, "no-such-id"]) if v] == [3]

    # The connection's own set-up, create.lua, check.lua, the read's HGETALL.
    assert {"HELLO", "EVALSHA", "HGETALL"} <= {args[0] for args in sent}
    assert_packed_as_redis_py_packs(sent)


def test_the_worker_packs_with_hiredis_too(worker_env, state, monkeypatch):
    for name, value in worker_env.items():
        monkeypatch.setenv(name, value)
    tasks._runtime.cache_clear()
    try:
        _settings, store, _sender = tasks._runtime()
        sent = recording(store, monkeypatch)
        assert store.claim_send("no-such-id", "0f" * 16).skipped_because == "not_found/"
        assert store.get("no-such-id") is None
        assert {"EVALSHA", "HGETALL"} <= {args[0] for args in sent}
        assert_packed_as_redis_py_packs(sent)
    finally:
        tasks._runtime.cache_clear()


def test_without_hiredis_redis_py_packs(monkeypatch):
    monkeypatch.setattr("verification.store.hiredis", None)
    assert command_packer() is None
