"""Verifications as Durable instances: the value rules, query parsing, history mapping and the index scan."""

from __future__ import annotations

import json

import pytest

from verification import keys
from verification.durable_query import _index
from verification.durable_status import (BadValue, decode_token, encode_token, event_code, flag, history_events,
                                         parse_time, runtime_filter, status_body)
from verification.model import Verification
from verification.store import Store


@pytest.mark.parametrize("value, length, expected", [
    (2168, 4, "2168"),
    (42, 4, "0042"),             # the sample compares ints: 42 is 0042
    ("0042", 4, "0042"),
    ("42", 4, "0042"),
    (" 42 ", 4, "0042"),
    ('"0042"', 4, "0042"),       # the Python client's doubly encoded string
    ('"\\"0042\\""', 4, "0042"),
    ("2168", 6, "002168"),
    (0, 4, "0000"),
    (9999999999, 10, "9999999999"),
])
def test_event_values_that_are_codes(value, length, expected):
    assert event_code(value, length) == expected


@pytest.mark.parametrize("value", [
    10000, -1, 12.0, 12.5, True, False, None, "", "abc", "12a", "+42", "-42", "1e3", "١٢٣٤", [42], {"code": 42},
    "9" * 5000, json.dumps(json.dumps(json.dumps("42"))),   # encoded once more than any client does
])
def test_event_values_that_are_not(value):
    with pytest.raises(BadValue):
        event_code(value, 4)


@pytest.mark.parametrize("text, default, expected", [
    ("true", False, True), ("True", False, True), ("TRUE", False, True), ("false", True, False),
    ("False", True, False), (None, True, True), ("yes", False, False), ("1", False, False), ("", True, True),
])
def test_flags_read_as_dotnet_does(text, default, expected):
    assert flag(text, default) is expected


@pytest.mark.parametrize("text, ms", [
    ("2026-01-02T03:04:05Z", 1767323045000),
    ("2026-01-02T03:04:05.250000Z", 1767323045250),   # the Python client's format
    ("2026-01-02T03:04:05", 1767323045000),           # naive is UTC
    ("2026-01-02T05:04:05+02:00", 1767323045000),
    ("2026-01-02T05:04:05 02:00", 1767323045000),     # `+` decoded to a space in a query string
])
def test_times(text, ms):
    assert parse_time(text, "createdTimeFrom") == ms


@pytest.mark.parametrize("text", ["yesterday", "", "2026-13-01T00:00:00Z", "1767323045"])
def test_bad_times(text):
    with pytest.raises(BadValue):
        parse_time(text, "createdTimeFrom")


def test_runtime_status_filters():
    assert runtime_filter(None) is None
    assert runtime_filter("running, Completed,terminated") == {"Running", "Completed", "Terminated"}
    with pytest.raises(BadValue):
        runtime_filter("Running,Asleep")


def test_tokens_round_trip_and_refuse_forgeries():
    assert decode_token(encode_token(1767323045000, "abc")) == (1767323045000, "abc")
    for token in ("", "!!!", "bm90IG91cnM=", "WzEsMiwzXQ==", "WyIxIiwiYSJd"):
        with pytest.raises(BadValue):
            decode_token(token)


def verification(status: str, **fields) -> Verification:
    base = dict(id="abc", phone="+14255550123", status=status, send_status="sent", created_ms=1000,
                updated_ms=5000, expires_ms=91000, attempts_remaining=3, max_attempts=4, code_length=4)
    return Verification(**{**base, **fields})


@pytest.mark.parametrize("status, runtime, output", [
    ("pending", "Running", None),
    ("approved", "Completed", True),
    ("max_attempts_reached", "Completed", False),
    ("expired", "Completed", False),
    ("canceled", "Terminated", "why"),
    ("failed", "Failed", "why"),
])
def test_status_mapping(status, runtime, output):
    body = status_body(verification(status, reason="why"))
    assert (body["runtimeStatus"], body["output"]) == (runtime, output)
    assert body["customStatus"] == {"status": status, "attemptsRemaining": 3}
    assert body["createdTime"] == "1970-01-01T00:00:01Z"


def test_completion_follows_the_event_that_ended_it_even_when_more_came_later():
    events = [{"t": 1000, "e": "started"}, {"t": 2000, "e": "response", "via": "sms", "ok": True},
              {"t": 3000, "e": "sms_sent"}, {"t": 4000, "e": "delivery", "status": "delivered"},
              {"t": 4500, "e": "something_new", "secret": "0042"}]
    history = history_events(verification("approved"), events)
    assert [e["EventType"] for e in history] == ["ExecutionStarted", "EventRaised", "ExecutionCompleted",
                                                 "TaskCompleted", "GenericEvent", "GenericEvent"]
    assert history[2]["Timestamp"] == "1970-01-01T00:00:02Z"
    assert history[4]["Status"] == "delivered"
    assert "0042" not in json.dumps(history)


def test_the_index_scan_takes_every_entry_once_across_batches_and_ties(state):
    store = Store(state, 60)
    # 450 ids over 3 milliseconds: batches of 200 end in the middle of a millisecond's ids.
    entries = {f"id-{n:03d}": 1000 + n % 3 for n in range(450)}
    state.zadd(keys.CREATED, entries)
    expected = sorted(((vid, ms) for vid, ms in entries.items()), key=lambda e: (e[1], e[0]))
    assert list(_index(store, 0, 10 ** 15, None)) == expected
    for position in (0, 1, 199, 200, 300, 449):
        vid, ms = expected[position]
        assert list(_index(store, 0, 10 ** 15, (ms, vid))) == expected[position + 1:]
    assert list(_index(store, 1001, 1001, None)) == [e for e in expected if e[1] == 1001]
