"""Rate limits: per phone, per API key, per client IP, the global SMS budget, and checks per IP."""

import socket

import pytest
import redis

from tests.conftest import API_KEY, wait_for
from verification import keys, ratelimits
from verification.config import ConfigError, Settings

PHONE = "+14155550170"
OTHERS = ["+14155550171", "+14155550172", "+14155550173", "+14155550174"]


def client_for(app, key=API_KEY, ip="198.51.100.1"):
    client = app.test_client()
    client.environ_base.update(HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR=ip)
    return client


def start(client, phone):
    return client.post("/v1/verifications", json={"phone": phone})


def started(client, phone) -> dict:
    response = start(client, phone)
    assert response.status_code == 202, response.json
    return response.json


def assert_limited(response, limit: str, window: int) -> int:
    assert response.status_code == 429, response.json
    error = response.json["error"]
    assert error["code"] == "rate_limited"
    assert error["limit"] == limit
    retry_after = int(response.headers["Retry-After"])
    assert 0 < retry_after <= window
    assert error["retryAfter"] == retry_after
    return retry_after


def dump(connection: redis.Redis) -> dict:
    """Every key of the state database with its value, to show that a refusal changed nothing."""
    read = {"string": connection.get, "hash": connection.hgetall, "list": lambda k: connection.lrange(k, 0, -1),
            "set": connection.smembers, "zset": lambda k: connection.zrange(k, 0, -1, withscores=True)}
    return {key: read[connection.type(key)](key) for key in connection.scan_iter()}


def nothing_created_for(state, phone: str, created_before: int) -> bool:
    return state.zcard(keys.CREATED) == created_before and not state.exists(keys.phone(phone))


def test_starts_per_phone_refused_with_retry_after_sending_and_storing_nothing(make_app, twilio, worker, state):
    client = client_for(make_app(LIMIT_STARTS_PER_PHONE="2/10 minutes"))
    for n in (1, 2):
        body = started(client, PHONE)
        twilio.wait_for_message(PHONE, count=n)
        # The worker is done with this one before the next start, so the snapshot below holds still.
        wait_for(lambda: client.get(body["links"]["self"]).json["sendStatus"] == "sent")
    # Where the counter lives (docs/architecture.md): in the number's index, after the newest id, the
    # times of the starts it counts, newest first.
    newest, *hits = state.get(keys.phone(PHONE)).split(" ")
    assert newest == body["id"] and len(hits) == 2 and int(hits[0]) >= int(hits[1])
    assert not state.keys(f"{keys.LIMITS_PREFIX}:*starts_per_phone*")
    before = dump(state)

    assert_limited(start(client, PHONE), "starts_per_phone", 600)
    assert dump(state) == before

    # Another number still goes through; once its SMS arrived, the refused start's would have too.
    started(client, OTHERS[0])
    twilio.wait_for_message(OTHERS[0])
    assert len(twilio.messages_to(PHONE)) == 2


def test_a_number_keeps_the_start_times_its_limit_counts_and_no_more(make_app, state):
    client = client_for(make_app(LIMIT_STARTS_PER_PHONE="2/2 seconds"))
    started(client, PHONE)
    second = started(client, PHONE)
    assert_limited(start(client, PHONE), "starts_per_phone", 2)
    newest, *hits = state.get(keys.phone(PHONE)).split(" ")
    assert newest == second["id"] and len(hits) == 2
    # Once the first start leaves the window, a third goes through and the first's time is dropped.
    wait_for(lambda: start(client, PHONE).status_code == 202, timeout=5, interval=0.1)
    newest, *now_hits = state.get(keys.phone(PHONE)).split(" ")
    assert newest != second["id"] and len(now_hits) == 2 and now_hits[1] == hits[0]


def test_each_limit_on_a_number_counts_in_its_own_window(make_app, state):
    client = client_for(make_app(LIMIT_STARTS_PER_PHONE="1/second;2/day", VERIFICATION_RETENTION_SECONDS="60"))
    started(client, PHONE)
    assert_limited(start(client, PHONE), "starts_per_phone", 1)
    wait_for(lambda: start(client, PHONE).status_code == 202, timeout=5, interval=0.1)
    assert assert_limited(start(client, PHONE), "starts_per_phone", 86400) > 86000
    assert len(state.get(keys.phone(PHONE)).split(" ")) == 3
    # The index outlives the record (90 + 60 s) while the day's limit counts its starts.
    assert 86000 < state.ttl(keys.phone(PHONE)) <= 86400


def test_without_a_limit_on_numbers_the_index_is_only_the_newest_id(make_app, state):
    client = client_for(make_app(LIMIT_STARTS_PER_PHONE="off", VERIFICATION_RETENTION_SECONDS="60"))
    started(client, PHONE)
    second = started(client, PHONE)
    assert state.get(keys.phone(PHONE)) == second["id"]
    assert 140 <= state.ttl(keys.phone(PHONE)) <= 150


def test_starts_per_api_key(make_app, twilio, worker, state):
    app = make_app(API_KEYS="key-a-0123456789,key-b-0123456789", LIMIT_STARTS_PER_API_KEY="2/minute")
    a, b = client_for(app, "key-a-0123456789"), client_for(app, "key-b-0123456789")
    started(a, OTHERS[0])
    started(a, OTHERS[1])
    created = state.zcard(keys.CREATED)
    assert_limited(start(a, OTHERS[2]), "starts_per_api_key", 60)
    assert nothing_created_for(state, OTHERS[2], created)
    # A rotated-in key has its own budget.
    started(b, OTHERS[2])


def test_starts_per_ip(make_app, twilio, worker, state):
    app = make_app(LIMIT_STARTS_PER_IP="2/minute")
    here, there = client_for(app, ip="203.0.113.7"), client_for(app, ip="203.0.113.8")
    started(here, OTHERS[0])
    started(here, OTHERS[1])
    created = state.zcard(keys.CREATED)
    assert_limited(start(here, OTHERS[2]), "starts_per_ip", 60)
    assert nothing_created_for(state, OTHERS[2], created)
    started(there, OTHERS[2])


def test_ipv6_clients_are_counted_by_their_64(make_app, twilio, worker, state):
    app = make_app(LIMIT_STARTS_PER_IP="1/minute")
    started(client_for(app, ip="2001:db8:1:2::a"), OTHERS[0])
    assert_limited(start(client_for(app, ip="2001:db8:1:2:ffff::b"), OTHERS[1]), "starts_per_ip", 60)
    started(client_for(app, ip="2001:db8:1:3::a"), OTHERS[1])


@pytest.mark.parametrize(("address", "counted_as"), [
    ("203.0.113.7", "203.0.113.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("::ffff:203.0.113.7", "203.0.113.7"),
    (None, None),
    ("", None),
    ("not-an-address", "not-an-address"),
    ("x" * 8000, "x" * 8000),
])
def test_client_network(address, counted_as):
    # Twice: the second answer comes from the cache of recent addresses, where one is kept.
    assert ratelimits.client_network(address) == counted_as
    assert ratelimits.client_network(address) == counted_as


def test_only_what_can_be_an_address_is_kept():
    ratelimits._client_network.cache_clear()
    ratelimits.client_network("z" * 8000)  # what a client behind a misconfigured PROXY_FIX_HOPS may send
    assert ratelimits._client_network.cache_info().currsize == 0
    ratelimits.client_network("203.0.113.7")
    assert ratelimits._client_network.cache_info().currsize == 1


def test_every_limit_has_its_key_where_the_library_keeps_it_but_a_numbers(service_env):
    # A key that changed would start every caller's count afresh at a deploy.
    settings = Settings.from_env(service_env, LIMIT_STARTS_PER_PHONE="5/10 minutes",
                                 LIMIT_STARTS_PER_API_KEY="20/minute", LIMIT_STARTS_PER_IP="10/minute;100/hour",
                                 LIMIT_SMS_GLOBAL="1000/minute")
    for ip in ("203.0.113.7", "y" * 100):  # an address kept, and a string too long to be one
        slots = ratelimits.Limiter(settings).start(PHONE, ratelimits.Caller(ip=ip, key_id="0123456789abcdef"))
        assert [slot.key for slot in slots] == [
            keys.phone(PHONE),
            "LIMITS:LIMITER/starts_per_api_key/0123456789abcdef/20/1/minute",
            f"LIMITS:LIMITER/starts_per_ip/{ip}/10/1/minute",
            f"LIMITS:LIMITER/starts_per_ip/{ip}/100/1/hour",
            "LIMITS:LIMITER/sms_global/all/1000/1/minute",
        ]


def test_global_sms_budget_and_a_refusal_spends_no_other_limit(make_app, twilio, worker, state):
    app = make_app(LIMIT_STARTS_PER_PHONE="1/10 minutes", LIMIT_SMS_GLOBAL="2/minute")
    client = client_for(app)
    started(client, OTHERS[0])
    # Refused by the phone limit: it must not spend a slot of the global budget.
    assert_limited(start(client, OTHERS[0]), "starts_per_phone", 600)
    started(client, OTHERS[1])
    created = state.zcard(keys.CREATED)
    # The budget is the service's, whoever asks.
    elsewhere = client_for(app, ip="203.0.113.9")
    assert_limited(start(elsewhere, OTHERS[2]), "sms_global", 60)
    # Tested before the global budget refused, the number's own limit kept its slot: it has no index.
    assert nothing_created_for(state, OTHERS[2], created)


def test_checks_per_ip_spend_no_attempt_when_refused(make_app, state):
    app = make_app(LIMIT_CHECKS_PER_IP="3/minute", VERIFICATION_MAX_ATTEMPTS="10",
                   VERIFICATION_CODE_LENGTH="10")
    here, there = client_for(app, ip="203.0.113.7"), client_for(app, ip="203.0.113.8")
    # Ten-digit guesses: wrong, whether or not a worker has sent the real code by now.
    body = started(here, PHONE)
    check = body["links"]["check"]
    assert here.post(check, json={"code": "12a4"}).status_code == 400  # malformed: costs nothing
    assert here.post(check, json={"code": "0000000000"}).status_code == 200
    assert here.post(check, json={"code": "0000000001"}).status_code == 200
    # Guessing across verification ids counts too.
    assert here.post("/v1/verifications/unknown/check", json={"code": "0000000002"}).status_code == 404
    assert_limited(here.post(check, json={"code": "0000000003"}), "checks_per_ip", 60)
    assert here.get(body["links"]["self"]).json["attemptsRemaining"] == 8
    assert there.post(check, json={"code": "0000000004"}).json["attemptsRemaining"] == 7


def test_retry_after_waits_for_every_limit_that_refused(make_app, state):
    client = client_for(make_app(LIMIT_STARTS_PER_PHONE="1/10 seconds", LIMIT_SMS_GLOBAL="1/minute"))
    started(client, OTHERS[0])
    # Both are full: the phone's limit is named (it comes first), but its 10 s would only meet the
    # global one's refusal.
    retry_after = assert_limited(start(client, OTHERS[0]), "starts_per_phone", 60)
    assert retry_after > 50


def test_a_limit_of_zero_refuses_every_start(make_app, state):
    client = client_for(make_app(LIMIT_SMS_GLOBAL="0/minute"))
    assert_limited(start(client, OTHERS[0]), "sms_global", 60)
    assert nothing_created_for(state, OTHERS[0], 0)


def test_limits_off(make_app, twilio, worker, state):
    client = client_for(make_app(LIMIT_SMS_GLOBAL="off", LIMIT_STARTS_PER_PHONE="off",
                                 LIMIT_STARTS_PER_IP="1/minute ; 100/day"))
    started(client, OTHERS[0])
    assert_limited(start(client, OTHERS[1]), "starts_per_ip", 60)


def test_redis_down_is_503_not_a_hang(make_app, state):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = client_for(make_app(REDIS_URL=f"redis://127.0.0.1:{port}/0"))
    response = start(client, PHONE)
    assert response.status_code == 503
    assert response.json["error"]["code"] == "unavailable"
    assert response.headers["Retry-After"]


def test_defaults_are_generous_for_one_backend():
    s = Settings.from_env({}, CODE_HASH_SECRET="x", API_KEYS="k", SMS_BACKEND="console")
    assert (s.LIMIT_STARTS_PER_PHONE, s.LIMIT_STARTS_PER_API_KEY, s.LIMIT_STARTS_PER_IP, s.LIMIT_SMS_GLOBAL,
            s.LIMIT_CHECKS_PER_IP) == ("5/10 minutes", "50/second", "50/second", "1000/minute", "600/minute")


@pytest.mark.parametrize("value", ["lots", "5 per", "5/fortnight"])
def test_bad_rates_are_refused(value):
    with pytest.raises(ConfigError, match="LIMIT_STARTS_PER_PHONE"):
        Settings.from_env({}, CODE_HASH_SECRET="x", API_KEYS="k", SMS_BACKEND="console",
                          LIMIT_STARTS_PER_PHONE=value)
