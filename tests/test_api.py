"""The /v1 API end to end: the web app, a real worker, real Redis, the Twilio stand-in."""

import re

import pytest

from tests.conftest import API_KEY, code_in, wait_for, wrong_code
from verification import keys
from verification.model import iso

PHONE = "+14155550100"


def start(client, phone=PHONE):
    response = client.post("/v1/verifications", json={"phone": phone})
    assert response.status_code == 202, response.json
    return response


def test_start_sends_a_code_that_approves(client, twilio, worker, state):
    response = start(client)
    body = response.json
    assert response.headers["Location"] == f"/v1/verifications/{body['id']}"
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", body["id"])  # 128 bits in base64url
    assert body["status"] == "pending"
    assert body["phone"] == PHONE
    assert body["attemptsRemaining"] == 4
    assert body["sendStatus"] == "queued"
    assert body["links"] == {
        "self": f"/v1/verifications/{body['id']}",
        "check": f"/v1/verifications/{body['id']}/check",
        "cancel": f"/v1/verifications/{body['id']}/cancel",
    }
    message = twilio.wait_for_message(PHONE)
    assert message.from_ == "+15005550006"
    code = code_in(message)
    assert message.body == f"Your verification code is {code}"
    wait_for(lambda: client.get(body["links"]["self"]).json["sendStatus"] == "sent")

    checked = client.post(body["links"]["check"], json={"code": code})
    assert checked.status_code == 200
    assert checked.json["approved"] is True
    assert checked.json["status"] == "approved"
    assert checked.json["attemptsRemaining"] == 4
    assert client.get(body["links"]["self"]).json["status"] == "approved"


def sent_code(client, twilio, phone=PHONE):
    """Start a verification and return it with the code the stub received."""
    body = start(client, phone).json
    code = code_in(twilio.wait_for_message(phone))
    wait_for(lambda: client.get(body["links"]["self"]).json["sendStatus"] == "sent")
    return body, code


def test_wrong_codes_spend_attempts_until_max_attempts_reached(client, twilio, worker):
    body, code = sent_code(client, twilio)
    for remaining in (3, 2, 1):
        response = client.post(body["links"]["check"], json={"code": wrong_code(code)})
        assert response.status_code == 200
        assert response.json["approved"] is False
        assert response.json["status"] == "pending"
        assert response.json["attemptsRemaining"] == remaining
    last = client.post(body["links"]["check"], json={"code": wrong_code(code)})
    assert last.status_code == 200
    assert (last.json["approved"], last.json["status"], last.json["attemptsRemaining"]) == (
        False, "max_attempts_reached", 0)
    # Even the right code is refused now, and refused as a conflict naming the status.
    after = client.post(body["links"]["check"], json={"code": code})
    assert after.status_code == 409
    assert after.json["error"]["code"] == "not_pending"
    assert after.json["error"]["status"] == "max_attempts_reached"


def test_ids_are_random_and_never_read_as_a_command_line_option(monkeypatch):
    from verification import service

    ids = {service.new_id() for _ in range(2000)}
    assert len(ids) == 2000 and all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", i) for i in ids)
    drawn = iter(["-AAAAAAAAAAAAAAAAAAAAA", "-BBBBBBBBBBBBBBBBBBBBB", "CCCCCCCCCCCCCCCCCCCCC-"])
    monkeypatch.setattr(service.secrets, "token_urlsafe", lambda n: next(drawn))
    assert service.new_id() == "CCCCCCCCCCCCCCCCCCCCC-"


def test_a_redis_that_lost_its_scripts_runs_each_once(client, twilio, worker, state):
    # A Redis restarted without its script cache answers NOSCRIPT: the web app and the worker load each
    # script again and run it, once (a check spends one attempt, not two).
    state.script_flush()
    body, code = sent_code(client, twilio)
    state.script_flush()
    wrong = client.post(body["links"]["check"], json={"code": wrong_code(code)})
    assert wrong.status_code == 200
    assert (wrong.json["approved"], wrong.json["attemptsRemaining"]) == (False, 3)
    assert state.hget(keys.state(body["id"]), "attempts") == "3"
    state.script_flush()
    right = client.post(body["links"]["check"], json={"code": code})
    assert (right.status_code, right.json["approved"], right.json["attemptsRemaining"]) == (200, True, 3)


def test_check_after_approval_is_a_conflict_not_a_second_success(client, twilio, worker):
    body, code = sent_code(client, twilio)
    assert client.post(body["links"]["check"], json={"code": code}).json["approved"] is True
    again = client.post(body["links"]["check"], json={"code": code})
    assert again.status_code == 409
    assert again.json["error"]["status"] == "approved"


@pytest.mark.parametrize("code", ["123", "12345678901", "12a4", "١٢٣٤", "", 1234, None, [], {"c": 1}, " 1234"])
def test_malformed_code_is_400_and_costs_nothing(client, twilio, worker, code):
    body = start(client).json
    response = client.post(body["links"]["check"], json={"code": code})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_code"
    assert client.get(body["links"]["self"]).json["attemptsRemaining"] == 4


def test_cancel(client, twilio, worker):
    body, code = sent_code(client, twilio)
    response = client.post(body["links"]["cancel"])
    assert response.status_code == 200
    assert response.json["status"] == "canceled"
    again = client.post(body["links"]["cancel"])
    assert again.status_code == 409
    assert again.json["error"]["status"] == "canceled"
    assert client.post(body["links"]["check"], json={"code": code}).status_code == 409


def test_unknown_verification_is_404(client, worker):
    for response in (client.get("/v1/verifications/nope"),
                     client.post("/v1/verifications/nope/check", json={"code": "1234"}),
                     client.post("/v1/verifications/nope/cancel")):
        assert response.status_code == 404
        assert response.json["error"]["code"] == "not_found"


@pytest.mark.parametrize("body", [
    {"phone": "not a number"}, {"phone": "4155550100"}, {"phone": 14155550100}, {"phone": ""}, {},
    {"phone": PHONE, "extra": 1}, [PHONE], "+14155550100",
])
def test_bad_starts_are_400_and_store_nothing(client, state, body):
    response = client.post("/v1/verifications", json=body)
    assert response.status_code == 400
    assert set(response.json["error"]) >= {"code", "message"}
    assert state.dbsize() == 0


def test_number_is_stored_in_e164(client, twilio, worker):
    body = client.post("/v1/verifications", json={"phone": "+1 (415) 555-0100"}).json
    assert body["phone"] == PHONE
    assert twilio.wait_for_message(PHONE)


def test_expiry_task_expires_a_pending_verification(make_app, twilio, worker, state):
    client = make_app(VERIFICATION_WINDOW_SECONDS="1").test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {API_KEY}"
    body, code = sent_code(client, twilio)
    # The worker's expiry task marks it, without any read or check nudging it.
    wait_for(lambda: state.hget(f"verif:{{{body['id']}}}:state", "status") == "expired", timeout=10)
    response = client.post(body["links"]["check"], json={"code": code})
    assert response.status_code == 409
    assert response.json["error"]["status"] == "expired"


def test_second_start_for_a_number_supersedes_the_first(client, twilio, worker, state):
    first, first_code = sent_code(client, twilio)
    second = start(client).json
    second_code = code_in(twilio.wait_for_message(PHONE, count=2))
    assert client.get(first["links"]["self"]).json["status"] == "canceled"
    assert client.post(first["links"]["check"], json={"code": first_code}).status_code == 409
    wait_for(lambda: client.get(second["links"]["self"]).json["sendStatus"] == "sent")
    assert client.post(second["links"]["check"], json={"code": second_code}).json["approved"] is True
    for done in (first, second):
        # Kept for the retention period as a compact hash: no field, no event, is over 64 bytes.
        assert state.object("encoding", keys.state(done["id"])) == "listpack"
    assert state.hget(keys.state(first["id"]), "reason") == "superseded by a newer verification"


def test_finished_records_are_kept_for_the_retention_period(make_app, twilio, worker, state):
    client = make_app(VERIFICATION_RETENTION_SECONDS="60").test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {API_KEY}"
    body, code = sent_code(client, twilio)
    client.post(body["links"]["check"], json={"code": code})
    assert 0 < state.ttl(f"verif:{{{body['id']}}}:state") <= 60


def test_responses_are_not_cached(client, worker):
    response = start(client)
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(("ms", "text"), [
    (0, "1970-01-01T00:00:00.000Z"),
    (1767323045250, "2026-01-02T03:04:05.250Z"),
    (1767323045999, "2026-01-02T03:04:05.999Z"),  # the same second as the one before, kept: its own ms
    (1767323046000, "2026-01-02T03:04:06.000Z"),
    (-1, "1969-12-31T23:59:59.999Z"),
])
def test_times_are_iso_8601_in_utc_with_milliseconds(ms, text):
    assert iso(ms) == text
