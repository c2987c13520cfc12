"""The check script's guarantees, on a real Redis: atomic, budgeted, deadline by Redis's clock."""

import hashlib
import hmac
import json
import re
import threading
import time

import pytest
import redis

from tests.conftest import CODE_HASH_SECRET
from verification import codes, keys
from verification.config import Settings
from verification.errors import ApiError, Conflict
from verification.service import Dispatcher, VerificationService
from verification.store import Store

PHONE = "+14155550100"


class Recorder(Dispatcher):
    """Sends nothing: the verification's fate is left to the test (no worker, no expiry task)."""

    def __init__(self):
        self.sent, self.expiries = [], []

    def send_challenge(self, verification_id):
        self.sent.append(verification_id)

    def expire_later(self, verification_id, countdown):
        self.expiries.append((verification_id, countdown))


@pytest.fixture
def service(service_env, state):
    def make(**overrides):
        settings = Settings.from_env(service_env, **overrides)
        connection = redis.Redis.from_url(overrides.get("REDIS_URL", service_env["REDIS_URL"]), decode_responses=True)
        return VerificationService(Store(connection, settings.VERIFICATION_RETENTION_SECONDS), settings, Recorder())

    return make


def with_code(service, code: str):
    """A started verification whose code is `code`, stored as the worker would store it."""
    verification = service.start(PHONE)
    code_hash = codes.digest(CODE_HASH_SECRET, verification.id, code)
    assert service.store.claim_send(verification.id, code_hash).claimed
    return verification


def all_at_once(count, action):
    barrier = threading.Barrier(count)
    results, errors = [], []

    def run():
        barrier.wait()
        try:
            results.append(action())
        except ApiError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def test_simultaneous_wrong_checks_spend_exactly_the_budget(service):
    svc = service()
    v = with_code(svc, "0042")
    results, errors = all_at_once(100, lambda: svc.check(v.id, "9999"))
    assert len(results) == 4  # min(100, budget): each spent one attempt
    assert sorted(r.attempts_remaining for r, approved in results) == [0, 1, 2, 3]
    assert not any(approved for _, approved in results)
    assert len(errors) == 96 and all(isinstance(e, Conflict) for e in errors)
    assert all(e.details["status"] == "max_attempts_reached" for e in errors)
    state = svc.store.get(v.id)
    assert (state.status, state.attempts_remaining) == ("max_attempts_reached", 0)
    responses = [e for e in svc.store.events(v.id) if e["e"] == "response"]
    assert len(responses) == 4  # nothing was compared beyond the budget


def test_the_right_code_among_many_wrong_ones_approves_exactly_once(service):
    # A budget larger than the wrong guesses, so whatever the order, one right code must win.
    svc = service(VERIFICATION_MAX_ATTEMPTS="100")
    v = with_code(svc, "0042")
    attempts = ["1111"] * 80 + ["0042"] * 20
    lock = threading.Lock()

    def next_code():
        with lock:
            return attempts.pop()

    results, errors = all_at_once(100, lambda: svc.check(v.id, next_code()))
    approvals = [r for r, approved in results if approved]
    wrongs = [r for r, approved in results if not approved]
    assert len(approvals) == 1
    assert len(results) + len(errors) == 100
    assert all(e.details["status"] == "approved" for e in errors)
    final = svc.store.get(v.id)
    assert final.status == "approved"
    assert final.attempts_remaining == 100 - len(wrongs)
    assert len([e for e in svc.store.events(v.id) if e["e"] == "response"]) == len(results)


def test_leading_zero_codes_match_exactly(service):
    svc = service()
    v = with_code(svc, "0042")
    assert svc.check(v.id, "0420")[1] is False
    verification, approved = svc.check(v.id, "0042")
    assert approved and verification.status == "approved"


def test_a_check_before_the_code_was_sent_is_a_wrong_guess(service):
    svc = service()
    v = svc.start(PHONE)
    verification, approved = svc.check(v.id, "1234")
    assert not approved and verification.attempts_remaining == 3


def test_lazy_expiry_when_the_expiry_task_never_runs(service, redis_server):
    # In a database no worker sweeps: the shared worker, running an earlier test's expiry task, sweeps
    # the state database for every overdue verification, and could expire this one before the check.
    state = redis.Redis.from_url(f"{redis_server.url}/5", decode_responses=True)
    state.flushdb()
    svc = service(VERIFICATION_WINDOW_SECONDS="1", REDIS_URL=f"{redis_server.url}/5")
    v = with_code(svc, "0042")
    assert svc.dispatcher.expiries == [(v.id, 1)]  # asked for, but nobody runs it here
    time.sleep(1.1)
    assert state.hget(keys.state(v.id), "status") == "pending"  # nothing touched it yet
    with pytest.raises(Conflict) as refused:
        svc.check(v.id, "0042")  # the right code, too late: Redis's clock decides
    assert refused.value.details["status"] == "expired"
    assert state.hget(keys.state(v.id), "status") == "expired"
    assert state.zscore(keys.DEADLINES, v.id) is None
    state.close()


def test_a_read_after_the_deadline_shows_expired(service, state):
    svc = service(VERIFICATION_WINDOW_SECONDS="1")
    v = with_code(svc, "0042")
    time.sleep(1.1)
    assert svc.get(v.id).status == "expired"
    assert state.hget(keys.state(v.id), "status") == "expired"


def test_the_expiry_task_is_a_no_op_on_a_final_verification(service):
    svc = service()
    v = with_code(svc, "0042")
    svc.check(v.id, "0042")
    result = svc.store.finish(v.id, "expired")
    assert result.outcome == "not_pending"
    assert svc.store.get(v.id).status == "approved"


def test_expiry_before_the_deadline_is_refused_as_not_due(service):
    svc = service(VERIFICATION_WINDOW_SECONDS="30")
    v = with_code(svc, "0042")
    result = svc.store.finish(v.id, "expired")
    assert result.outcome == "not_due" and 29000 < result.ms <= 30000
    assert svc.store.get(v.id).status == "pending"


def test_a_purge_takes_the_id_out_of_its_numbers_index(service, state):
    svc = service()  # no rate limits: the index is the id alone, and goes with it
    purged = svc.start(PHONE)
    assert svc.store.purge(purged.id) and not state.exists(keys.phone(PHONE))
    kept = svc.start(PHONE)
    state.set(keys.phone(PHONE), f"{kept.id} 1795739756479 1795739756400", keepttl=True)
    assert svc.store.purge(kept.id)
    assert state.get(keys.phone(PHONE)) == " 1795739756479 1795739756400"
    assert svc.store.newest_for(PHONE) is None
    latest = svc.start(PHONE)
    assert state.get(keys.phone(PHONE)) == latest.id


def test_pending_state_and_its_indexes(service, state):
    svc = service(VERIFICATION_WINDOW_SECONDS="90", VERIFICATION_RETENTION_SECONDS="100")
    v = svc.start(PHONE)
    h = state.hgetall(keys.state(v.id))
    assert h["status"] == "pending" and h["phone"] == PHONE and h["send"] == "queued"
    assert int(h["expires"]) - int(h["created"]) == 90_000
    assert 180 <= state.ttl(keys.state(v.id)) <= 190
    assert state.get(keys.phone(PHONE)) == v.id
    assert state.zscore(keys.DEADLINES, v.id) == int(h["expires"])
    assert state.zscore(keys.CREATED, v.id) == int(h["created"])


def test_events_begin_with_the_start_which_is_its_created_time(service, state):
    svc = service()
    v = with_code(svc, "0042")
    assert len(state.hget(keys.state(v.id), "hash")) == 32  # 128 bits of the HMAC
    svc.check(v.id, "1111")
    svc.check(v.id, "2222")
    h = state.hgetall(keys.state(v.id))
    created = int(h["created"])
    # No counter, and the start is not stored: each event's field is e<the hash's length then>.
    fields = sorted((f for f in h if re.fullmatch(r"e[0-9]+", f)), key=lambda f: int(f[1:]))
    assert "events" not in h and len(fields) == 2 and int(fields[0][1:]) < int(fields[1][1:])
    events = svc.store.events(v.id)
    assert events[0] == {"t": created, "e": "started"}
    assert [e["e"] for e in events] == ["started", "response", "response"]
    # Stored from `created`, read from 1970.
    assert [json.loads(h[f])["t"] + created for f in fields] == [e["t"] for e in events[1:]]
    assert svc.store.events("no-such-id") == []


def test_a_record_stored_by_an_earlier_version_reads_and_checks_the_same(service, state):
    svc = service()
    v = svc.start(PHONE)
    created = int(state.hget(keys.state(v.id), "created"))
    whole = hmac.new(CODE_HASH_SECRET.encode(), f"{v.id}:0042".encode(), hashlib.sha256).hexdigest()
    # As stored then: the whole HMAC, a counter, and events timed from 1970, the start among them.
    state.hset(keys.state(v.id), mapping={
        "hash": whole, "send": "sent", "events": 2,
        "e1": json.dumps({"t": created, "e": "started"}), "e2": json.dumps({"t": created + 5, "e": "sms_sent"})})
    assert svc.check(v.id, "1111")[1] is False
    assert svc.check(v.id, "0042")[1] is True
    events = svc.store.events(v.id)
    assert [e["e"] for e in events] == ["started", "sms_sent", "response", "response"]
    assert [e["t"] for e in events[:2]] == [created, created + 5]
    assert all(e["t"] >= created for e in events)


def test_creation_index_entries_of_vanished_records_are_forgotten(service, state):
    svc = service()
    v = svc.start(PHONE)
    created = svc.store.get(v.id).created_ms
    assert svc.store.forget_created_before(created - 1) == 0
    assert state.zscore(keys.CREATED, v.id) == created
    assert svc.store.forget_created_before(created + 1) == 1
    assert state.zscore(keys.CREATED, v.id) is None


def test_cancel_after_the_deadline_finds_it_expired(service, state):
    svc = service(VERIFICATION_WINDOW_SECONDS="1")
    v = with_code(svc, "0042")
    time.sleep(1.1)
    with pytest.raises(Conflict) as refused:
        svc.cancel(v.id)
    assert refused.value.details["status"] == "expired"
    assert state.hget(keys.state(v.id), "status") == "expired"


class Unreachable(Recorder):
    def new_verification(self, verification_id, countdown):
        raise ConnectionError("broker down")


def test_a_start_that_cannot_queue_leaves_the_earlier_verification_alone(service, state):
    svc = service()
    first = with_code(svc, "0042")
    svc.dispatcher = Unreachable()
    with pytest.raises(ConnectionError):
        svc.start(PHONE)
    assert svc.store.get(first.id).status == "pending"
    failed = [k for k in state.scan_iter("verif:{*}:state") if k != keys.state(first.id)]
    assert [state.hget(k, "status") for k in failed] == ["failed"]
    verification, approved = svc.check(first.id, "0042")
    assert approved
