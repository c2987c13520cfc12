"""Hostile input on every route: a clear JSON error with the right status, never a 500, nothing written."""

from __future__ import annotations

import base64
import json
import re

import pytest

from tests.isolated import authorized, iso_app, iso_celery, iso_env  # noqa: F401
from verification import keys

PHONE = "+14155550177"
ID = "0" * 32  # well formed, unknown

# Bodies that are not JSON objects at all.
MALFORMED = [
    b"{", b"{'phone': '+14155550177'}", b'{"phone": "+1415', b"\xff\xfe\x00{", b"[" * 5000, b'{"a":' * 2000,
    b"null", b"[]", b'"+14155550177"', b"123", b"true", b"phone=%2B14155550177", b"\x00" * 100,
    b"1" * 5000,  # an integer past Python's 4300-digit limit
]


def written(state) -> list[str]:
    """Keys a request left behind, rate-limit counters aside (a refused request may still count)."""
    return [k for k in state.keys("*") if not k.startswith(keys.LIMITS_PREFIX)]


def error_of(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data()[:300])
    assert response.is_json, response.get_data()[:300]
    error = response.json["error"]
    assert error["message"]
    if code:
        assert error["code"] == code
    return error


@pytest.fixture
def client(iso_app):
    """Queues on a broker no worker reads, so no send changes a record under a test's feet."""
    return authorized(iso_app())


@pytest.fixture
def pending(client) -> dict:
    """A pending verification whose SMS is never sent."""
    response = client.post("/v1/verifications", json={"phone": PHONE})
    assert response.status_code == 202
    return response.json


def snapshot(state, verification_id: str) -> dict:
    """The verification's hash: its fields and its events."""
    return state.hgetall(keys.state(verification_id))


@pytest.mark.parametrize("path", ["/v1/verifications", f"/v1/verifications/{ID}/check",
                                  f"/v1/verifications/{ID}/cancel"])
@pytest.mark.parametrize("body", MALFORMED, ids=lambda b: repr(b[:12]))
def test_malformed_json_is_a_400(client, state, path, body):
    response = client.post(path, data=body, content_type="application/json")
    error_of(response, 400, "invalid_json")
    assert written(state) == []


@pytest.mark.parametrize("phone", [
    14155550177, None, True, ["+14155550177"], {"number": "+14155550177"}, 1.5e10, "", " ", "+",
    "not a number", "+1" + "5" * 70, "+" + "9" * 5000, "+999 555 0100", "+1 415 555 01", "0" * 20,
    "+14155550177\n+14155550178", "＋", "\u202e\u202d", "+1-800-555-0100",  # toll free: not a mobile
])
def test_bad_phone_is_a_400(client, state, phone):
    error_of(client.post("/v1/verifications", json={"phone": phone}), 400)
    assert written(state) == []


@pytest.mark.parametrize("body, code", [
    ({}, "missing_field"),
    ({"number": PHONE}, "unknown_field"),
    ({"phone": PHONE, "admin": True}, "unknown_field"),
    ({"phone": PHONE, "__proto__": {}}, "unknown_field"),
    ({"phone": PHONE, "x" * 10000: 1}, "unknown_field"),
])
def test_missing_and_extra_fields_on_start(client, state, body, code):
    error_of(client.post("/v1/verifications", json=body), 400, code)
    assert written(state) == []


def test_huge_bodies_are_a_413(client, state):
    for path in ("/v1/verifications", f"/v1/verifications/{ID}/check", f"/v1/verifications/{ID}/cancel"):
        body = json.dumps({"phone": PHONE, "pad": "x" * 20000})
        error_of(client.post(path, data=body, content_type="application/json"), 413)
    assert written(state) == []


MALFORMED_CODES = [
    1234, 12.34, None, True, ["1234"], {"code": "1234"}, "", "123", "12345678901", "12 34", " 1234", "1234 ",
    "-1234", "+1234", "1e10", "0x1F", "١٢٣٤", "１２３４", "12３4", "१२३४", "1234\x00", "1" * 10000, "abcd",
]


@pytest.mark.parametrize("code", MALFORMED_CODES, ids=repr)
def test_malformed_code_is_a_400_and_costs_nothing(client, state, pending, code):
    before = snapshot(state, pending["id"])
    error_of(client.post(pending["links"]["check"], json={"code": code}), 400, "invalid_code")
    assert snapshot(state, pending["id"]) == before
    assert client.get(pending["links"]["self"]).json["attemptsRemaining"] == 4


@pytest.mark.parametrize("body, code", [
    ({}, "missing_field"),
    ({"code": "1234", "phone": PHONE}, "unknown_field"),
    ({"otp": "1234"}, "unknown_field"),
])
def test_missing_and_extra_fields_on_check_cost_nothing(client, state, pending, body, code):
    before = snapshot(state, pending["id"])
    error_of(client.post(pending["links"]["check"], json=body), 400, code)
    assert snapshot(state, pending["id"]) == before


def test_cancel_takes_no_fields(client, state, pending):
    before = snapshot(state, pending["id"])
    error_of(client.post(pending["links"]["cancel"], json={"reason": "x"}), 400, "unknown_field")
    error_of(client.post(pending["links"]["cancel"], data=b"[1]", content_type="application/json"), 400)
    assert snapshot(state, pending["id"]) == before


@pytest.mark.parametrize("verification_id", ["x", "A" * 5000, "%ff%fe", "%00", "{x}", "..%2f..%2fetc",
                                             "١٢٣٤", "*", "verif:{x}:state"])
def test_unknown_or_strange_ids_are_a_404(client, state, verification_id):
    base = f"/v1/verifications/{verification_id}"
    error_of(client.get(base), 404, "not_found")
    error_of(client.post(f"{base}/check", json={"code": "1234"}), 404, "not_found")
    error_of(client.post(f"{base}/cancel"), 404, "not_found")
    assert written(state) == []


@pytest.mark.parametrize("path", ["/nope", "/v1", "/v1/", "/v1/verification", "/v1/verifications/x/y/z",
                                  "/v1/verifications/x/check/extra", "/../../etc/passwd", "/%ff", "/" + "a" * 5000])
def test_unknown_routes_are_a_404(client, state, path):
    error_of(client.get(path), 404)
    error_of(client.post(path, json={}), 404)
    assert written(state) == []


@pytest.mark.parametrize("method, path", [
    ("GET", "/v1/verifications"), ("PUT", "/v1/verifications"), ("DELETE", "/v1/verifications"),
    ("PATCH", "/v1/verifications"), ("POST", f"/v1/verifications/{ID}"), ("DELETE", f"/v1/verifications/{ID}"),
    ("PUT", f"/v1/verifications/{ID}"), ("GET", f"/v1/verifications/{ID}/check"),
    ("GET", f"/v1/verifications/{ID}/cancel"), ("POST", "/healthz"),
])
def test_wrong_methods_are_a_405(client, state, method, path):
    response = client.open(path, method=method, json={"phone": PHONE})
    error_of(response, 405)
    assert response.headers["Allow"]
    assert written(state) == []


def test_non_ascii_digits_in_a_phone_are_read_as_digits(client, state):
    """phonenumbers reads any script's digits; what is stored (and texted) is plain E.164."""
    for phone in ("+１４１５５５５０１７７", "+١٤١٥٥٥٥٠١٧٧"):
        response = client.post("/v1/verifications", json={"phone": phone})
        assert response.status_code == 202
        assert response.json["phone"] == PHONE
        assert state.hget(keys.state(response.json["id"]), "phone") == PHONE


def test_without_an_api_key_nothing_happens(iso_app, state):
    anonymous = iso_app().test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + "x" * 5000},
                    {"Authorization": "Bearer " + "é" * 100}):
        error_of(anonymous.post("/v1/verifications", json={"phone": PHONE}, headers=headers), 401)
    assert written(state) == []


# Every route the app has, whoever wrote it: junk never makes a 500, and errors are JSON.

JUNK_BODIES = [(b"", "application/json"), (b"{", "application/json"), (b"[" * 3000, "application/json"),
               (b'{"x": 1}', "application/json"), (b"\xff\x00", "application/json"),
               (b"a=1&b=%zz&c", "application/x-www-form-urlencoded"), (b"<xml/>", "text/xml")]
FILLERS = ["x", "A" * 3000, "%ff"]
HTML_OR_TEXT = {"static", "demo.static", "demo.root", "demo.page", "openapi.docs", "metrics.metrics"}


def _routes(app):
    for rule in app.url_map.iter_rules():
        yield rule, re.sub(r"<(?:[^:>]+:)?([^>]+)>", "{}", rule.rule)


def test_junk_on_every_route_is_never_a_500(iso_app, state):
    app = iso_app(DEMO_PAGE=True)
    client = app.test_client()
    for authorization in (f"Bearer {app.extensions['verification.settings'].API_KEYS[0]}", None):
        client.environ_base.pop("HTTP_AUTHORIZATION", None)
        if authorization:
            client.environ_base["HTTP_AUTHORIZATION"] = authorization
        for rule, pattern in _routes(app):
            for filler in FILLERS:
                path = pattern.replace("{}", filler)
                for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
                    for body, content_type in JUNK_BODIES if method in ("POST", "PUT", "PATCH") else [(b"", None)]:
                        response = client.open(path, method=method, data=body, content_type=content_type)
                        where = (method, path[:80], body[:20], content_type, response.status_code)
                        assert response.status_code < 500, (where, response.get_data()[:300])
                        if response.status_code >= 400 and rule.endpoint not in HTML_OR_TEXT:
                            assert response.is_json or response.mimetype in ("text/xml", "application/xml"), where
    assert written(state) == []


DEEP = json.dumps("[" * 5000)  # a JSON string holding text nested too deep to parse


def test_deeply_nested_json_inside_durable_strings_is_a_400(client, state):
    start = client.post("/orchestrators/E4_SmsPhoneVerification", data=DEEP, content_type="application/json")
    assert start.status_code == 400 and start.is_json
    assert "ExceptionMessage" in start.json
    assert written(state) == []

    started = client.post("/orchestrators/E4_SmsPhoneVerification", json=PHONE)
    assert started.status_code == 202
    instance = started.json["id"]
    raised = client.post(f"/runtime/webhooks/durabletask/instances/{instance}/raiseEvent/SmsChallengeResponse",
                         data=DEEP, content_type="application/json")
    assert raised.status_code == 400 and raised.is_json
    assert state.hget(keys.state(instance), "attempts") == "4"

    token = base64.urlsafe_b64encode(b"[" * 3000).decode()
    listed = client.get("/runtime/webhooks/durabletask/instances/", headers={"x-ms-continuation-token": token})
    assert listed.status_code == 400 and listed.is_json
