"""Twilio's webhooks end to end: signed SMS replies that check a code once, and delivery status callbacks.

Requests are signed exactly as Twilio signs them: `RequestValidator.compute_signature` over the public
URL and the form. These tests run a worker of their own with PUBLIC_BASE_URL set (so it passes a
status callback URL to Twilio), on a broker database of its own.
"""

from __future__ import annotations

import re
import secrets
import threading
import xml.etree.ElementTree as ET

import pytest
import requests
from twilio.request_validator import RequestValidator

from tests.conftest import API_KEY, Worker, build_app, celery_for, code_in, serving, wait_for, wrong_code
from tests.twilio_stub import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER
from verification import keys, openapi, webhooks
from verification.replies import TEXTS
from verification.store import Store

PHONE = "+14155550100"
PUBLIC = "https://verify.example.com"
# A broker database no other test module uses, so only this module's worker takes these tasks.
BROKER_DB = 7


@pytest.fixture(scope="module")
def hook_broker(redis_server) -> str:
    return f"{redis_server.url}/{BROKER_DB}"


@pytest.fixture(scope="module")
def public_worker(worker_env, hook_broker, tmp_path_factory):
    env = {**worker_env, "CELERY_BROKER_URL": hook_broker, "PUBLIC_BASE_URL": PUBLIC}
    process = Worker(env, tmp_path_factory.mktemp("hook-worker") / "worker.log").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def hook_celery(hook_broker):
    return celery_for(hook_broker)


@pytest.fixture
def make_hook_app(service_env, hook_celery, public_worker, state):
    def make(**overrides):
        return build_app({**service_env, "PUBLIC_BASE_URL": PUBLIC, **overrides}, hook_celery)

    return make


@pytest.fixture
def hook_app(make_hook_app):
    return make_hook_app()


@pytest.fixture
def api(hook_app):
    return clients(hook_app)[0]


@pytest.fixture
def hook(hook_app):
    return clients(hook_app)[1]


def sms(body: str, sender: str = PHONE, sid: str | None = None, **extra) -> dict:
    """An inbound SMS as Twilio posts it."""
    sid = sid or "SM" + secrets.token_hex(16)
    return {"ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "",
            "FromZip": "", "SmsSid": sid, "FromState": "CA", "SmsStatus": "received", "FromCity": "",
            "Body": body, "FromCountry": "US", "To": FROM_NUMBER, "MessagingServiceSid": "", "ToZip": "",
            "NumSegments": "1", "MessageSid": sid, "AccountSid": ACCOUNT_SID, "From": sender,
            "ApiVersion": "2010-04-01", **extra}


def sign(url: str, form: dict, token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, form)


def post_signed(client, path: str, form: dict, *, url: str | None = None, token: str = AUTH_TOKEN,
                headers: dict | None = None):
    signature = sign(url or PUBLIC + path, form, token)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature, **(headers or {})})


def clients(app):
    """An API client with the key, and a client without one, as Twilio calls."""
    api = app.test_client()
    api.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {API_KEY}"
    return api, app.test_client()


def say(hook, text: str, **fields) -> str:
    """Text `text` to the service; returns what it answers by SMS."""
    return reply_text(post_signed(hook, "/twilio/sms", sms(text, **fields)))


def reply_text(response) -> str:
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/xml"
    return ET.fromstring(response.data).find("Message").text


def start(api, phone: str = PHONE) -> dict:
    response = api.post("/v1/verifications", json={"phone": phone})
    assert response.status_code == 202, response.json
    return response.json


def started(api, twilio, phone: str = PHONE, count: int = 1) -> tuple[dict, str]:
    """A verification whose SMS went out, and the code in it."""
    body = start(api, phone)
    code = code_in(twilio.wait_for_message(phone, count))
    wait_for(lambda: api.get(body["links"]["self"]).json["sendStatus"] == "sent")
    return body, code


def events(state, verification_id: str, kind: str) -> list[dict]:
    return [e for e in Store(state, 0).events(verification_id) if e["e"] == kind]


def responses(state, verification_id: str) -> list[dict]:
    return events(state, verification_id, "response")


# --- Replies -------------------------------------------------------------------------------------

def test_a_reply_with_the_code_approves(api, hook, twilio, state):
    body, code = started(api, twilio)
    response = post_signed(hook, "/twilio/sms", sms(f"Code: {code} thanks"))
    assert reply_text(response) == TEXTS["approved"]
    assert code not in response.get_data(as_text=True)
    after = api.get(body["links"]["self"]).json
    assert after["status"] == "approved"
    assert after["attemptsRemaining"] == 4
    assert [(e["via"], e["ok"]) for e in responses(state, body["id"])] == [("sms", True)]


def test_the_challenge_asks_for_a_status_callback_at_the_public_url(api, twilio):
    body, _ = started(api, twilio)
    assert twilio.wait_for_message(PHONE).status_callback == f"{PUBLIC}/twilio/status?v={body['id']}"


@pytest.mark.parametrize("text", ["{code}", " {code} ", "Code: {code}", "my code is {code}."])
def test_the_first_group_of_digits_is_the_code(api, hook, twilio, text):
    body, code = started(api, twilio)
    assert say(hook, text.format(code=code)) == TEXTS["approved"]


def test_each_wrong_reply_says_how_many_attempts_are_left(make_hook_app, twilio, state):
    app = make_hook_app(VERIFICATION_MAX_ATTEMPTS="3")
    api, hook = clients(app)
    body, code = started(api, twilio)
    wrong = wrong_code(code)
    assert say(hook, wrong) == "That code is not right. You have 2 attempts left."
    assert say(hook, wrong) == "That code is not right. You have 1 attempt left."
    assert say(hook, wrong) == TEXTS["no_attempts"]
    assert api.get(body["links"]["self"]).json["status"] == "max_attempts_reached"
    # Even the right code is refused now, and nothing more is counted.
    assert say(hook, code) == TEXTS["no_attempts"]
    assert len(responses(state, body["id"])) == 3


def test_a_reply_after_the_deadline_says_expired(make_hook_app, twilio):
    app = make_hook_app(VERIFICATION_WINDOW_SECONDS="1")
    api, hook = clients(app)
    body, code = started(api, twilio)
    wait_for(lambda: api.get(body["links"]["self"]).json["status"] == "expired")
    assert say(hook, code) == TEXTS["expired"]
    assert say(hook, "hello") == TEXTS["expired"]


def test_a_reply_once_approved_finds_nothing_pending(api, hook, twilio):
    body, code = started(api, twilio)
    assert api.post(body["links"]["check"], json={"code": code}).json["approved"] is True
    assert say(hook, code) == TEXTS["nothing_pending"]
    assert say(hook, "hi") == TEXTS["nothing_pending"]


def test_a_reply_after_a_second_start_goes_to_the_newest_verification(make_hook_app, twilio):
    # Eight digits, so the two codes differ.
    app = make_hook_app(VERIFICATION_CODE_LENGTH="8")
    api, hook = clients(app)
    first, first_code = started(api, twilio)
    second, second_code = started(api, twilio, count=2)
    assert api.get(first["links"]["self"]).json["status"] == "canceled"
    assert say(hook, first_code) == "That code is not right. You have 3 attempts left."
    assert say(hook, second_code) == TEXTS["approved"]
    assert api.get(second["links"]["self"]).json["status"] == "approved"
    assert api.get(first["links"]["self"]).json["status"] == "canceled"


def test_a_number_indexed_by_an_earlier_version_still_gets_its_replies(make_hook_app, twilio, state):
    # Before its rate limits moved into it, a number's index held the newest id alone.
    app = make_hook_app(VERIFICATION_CODE_LENGTH="8")
    api, hook = clients(app)
    first, first_code = started(api, twilio)
    state.set(keys.phone(PHONE), first["id"], keepttl=True)
    assert say(hook, wrong_code(first_code)) == "That code is not right. You have 3 attempts left."
    second, second_code = started(api, twilio, count=2)
    assert api.get(first["links"]["self"]).json["status"] == "canceled"
    assert state.get(keys.phone(PHONE)).split(" ")[0] == second["id"]
    assert say(hook, second_code) == TEXTS["approved"]


def test_an_index_naming_another_numbers_verification_is_not_followed(api, hook, twilio, state):
    # A number's index outlives its record while the number's rate limit counts its starts; a Durable
    # start may give the vanished record's id to another number's verification meanwhile.
    other = "+14155550188"
    theirs, their_code = started(api, twilio, other)
    state.set(keys.phone(PHONE), f"{theirs['id']} 1795739756479")
    assert say(hook, their_code) == TEXTS["nothing_pending"]
    assert say(hook, "what is this?") == TEXTS["nothing_pending"]
    start(api)  # this number's own start does not cancel theirs as superseded
    after = api.get(theirs["links"]["self"]).json
    assert (after["status"], after["attemptsRemaining"]) == ("pending", 4)
    assert say(hook, their_code, sender=other) == TEXTS["approved"]


@pytest.mark.parametrize("sender", ["+14155550199", "+447700900123", "not-a-number", ""])
def test_a_reply_from_a_number_with_nothing_pending(api, hook, twilio, state, sender):
    body, code = started(api, twilio)
    assert say(hook, code, sender=sender) == TEXTS["nothing_pending"]
    assert api.get(body["links"]["self"]).json["attemptsRemaining"] == 4
    assert responses(state, body["id"]) == []


@pytest.mark.parametrize("text", ["hello", "", "123", "١٢٣٤", "12 34", "code please"])
def test_a_reply_without_a_code_gets_help_and_costs_nothing(api, hook, twilio, state, text):
    body, _ = started(api, twilio)
    assert say(hook, text) == TEXTS["help"]
    assert api.get(body["links"]["self"]).json["attemptsRemaining"] == 4
    assert responses(state, body["id"]) == []


def test_unknown_form_fields_are_signed_and_accepted(api, hook, twilio):
    body, code = started(api, twilio)
    form = sms(code, NewTwilioField="x", MediaUrl0="https://api.twilio.com/x.jpg", OptOutType="")
    assert reply_text(post_signed(hook, "/twilio/sms", form)) == TEXTS["approved"]


# --- Signatures and the public URL ---------------------------------------------------------------

def assert_refused(response, api, body, state):
    assert response.status_code == 403
    assert response.json["error"]["code"] == "invalid_signature"
    after = api.get(body["links"]["self"]).json
    assert (after["status"], after["attemptsRemaining"]) == ("pending", 4)
    assert responses(state, body["id"]) == []
    assert state.keys(keys.inbound("*")) == []


def test_a_wrong_token_is_refused(api, hook, twilio, state):
    body, code = started(api, twilio)
    assert_refused(post_signed(hook, "/twilio/sms", sms(code), token="not-the-auth-token"), api, body, state)


def test_a_tampered_body_is_refused(api, hook, twilio, state):
    body, code = started(api, twilio)
    form = sms(wrong_code(code))
    signature = sign(PUBLIC + "/twilio/sms", form)
    tampered = {**form, "Body": code}
    response = hook.post("/twilio/sms", data=tampered, headers={"X-Twilio-Signature": signature})
    assert_refused(response, api, body, state)
    added = hook.post("/twilio/sms", data={**form, "Extra": "1"}, headers={"X-Twilio-Signature": signature})
    assert_refused(added, api, body, state)


def test_a_missing_signature_is_refused(api, hook, twilio, state):
    body, code = started(api, twilio)
    assert_refused(hook.post("/twilio/sms", data=sms(code)), api, body, state)


def test_a_signature_over_another_url_is_refused(api, hook, twilio, state):
    body, code = started(api, twilio)
    # The URL the app sees, not the public one Twilio called.
    response = post_signed(hook, "/twilio/sms", sms(code), url="http://localhost/twilio/sms")
    assert_refused(response, api, body, state)


def test_without_an_auth_token_every_request_is_refused(make_hook_app, api, twilio, state):
    body, code = started(api, twilio)
    hook = make_hook_app(TWILIO_AUTH_TOKEN="").test_client()
    for token in (AUTH_TOKEN, ""):
        assert_refused(post_signed(hook, "/twilio/sms", sms(code), token=token), api, body, state)
    assert hook.post("/twilio/sms", data=sms(code)).status_code == 403


@pytest.mark.parametrize("path", ["/twilio/sms?tenant=a%2Fb&x=%7E&y=a+b", "/twilio/%73ms"])
def test_the_raw_path_and_query_are_signed_as_received(api, hook, twilio, path):
    body, code = started(api, twilio)
    assert reply_text(post_signed(hook, path, sms(code))) == TEXTS["approved"]


def test_a_decoded_query_is_not_the_signed_url(api, hook, twilio, state):
    body, code = started(api, twilio)
    response = post_signed(hook, "/twilio/sms?tenant=a%2Fb", sms(code), url=PUBLIC + "/twilio/sms?tenant=a/b")
    assert_refused(response, api, body, state)


def test_behind_a_proxy_the_forwarded_public_url_is_signed(make_hook_app, api, twilio, state):
    body, code = started(api, twilio)
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "verify.example.com",
                 "X-Forwarded-For": "203.0.113.9"}
    untrusting = make_hook_app(PUBLIC_BASE_URL="").test_client()
    # Without PROXY_FIX_HOPS the forwarded headers are not believed: the app sees http://localhost.
    response = post_signed(untrusting, "/twilio/sms", sms(code), url=f"{PUBLIC}/twilio/sms", headers=forwarded)
    assert_refused(response, api, body, state)
    trusting = make_hook_app(PUBLIC_BASE_URL="", PROXY_FIX_HOPS="1").test_client()
    response = post_signed(trusting, "/twilio/sms?src=proxy", sms(code), url=f"{PUBLIC}/twilio/sms?src=proxy",
                           headers=forwarded)
    assert reply_text(response) == TEXTS["approved"]


def test_without_a_proxy_or_public_url_the_request_url_is_signed(make_hook_app, api, twilio):
    body, code = started(api, twilio)
    hook = make_hook_app(PUBLIC_BASE_URL="").test_client()
    response = post_signed(hook, "/twilio/sms", sms(code), url="http://localhost/twilio/sms")
    assert reply_text(response) == TEXTS["approved"]


# --- Retries: one count per message --------------------------------------------------------------

def test_a_retried_message_gets_the_same_reply_and_counts_once(api, hook, twilio, state):
    body, code = started(api, twilio)
    form = sms(wrong_code(code))
    first = post_signed(hook, "/twilio/sms", form)
    again = post_signed(hook, "/twilio/sms", form)
    assert reply_text(first) == "That code is not right. You have 3 attempts left."
    assert again.data == first.data
    assert api.get(body["links"]["self"]).json["attemptsRemaining"] == 3
    assert len(responses(state, body["id"])) == 1
    assert 0 < state.ttl(keys.inbound(form["MessageSid"])) <= 86400


def test_the_idempotency_token_stands_in_for_a_missing_message_sid(api, hook, twilio, state):
    body, code = started(api, twilio)
    form = {k: v for k, v in sms(wrong_code(code)).items() if k not in ("MessageSid", "SmsMessageSid", "SmsSid")}
    token = {"I-Twilio-Idempotency-Token": "idem-" + secrets.token_hex(8)}
    first = post_signed(hook, "/twilio/sms", form, headers=token)
    again = post_signed(hook, "/twilio/sms", form, headers=token)
    assert again.data == first.data
    assert api.get(body["links"]["self"]).json["attemptsRemaining"] == 3
    missing = post_signed(hook, "/twilio/sms", form)
    assert missing.status_code == 400
    assert missing.json["error"]["code"] == "missing_field"


def test_a_retry_while_the_first_is_answered_waits_for_its_reply(hook_app, hook, state):
    form = sms("1234")
    key = keys.inbound(form["MessageSid"])
    state.set(key, "answering", ex=60)
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("r", post_signed(hook_app.test_client(),
                                                                               "/twilio/sms", form)))
    thread.start()
    state.set(key, '<?xml version="1.0" encoding="UTF-8"?><Response><Message>earlier</Message></Response>', ex=60)
    thread.join()
    assert reply_text(result["r"]) == "earlier"


def test_a_retry_of_a_message_still_being_answered_is_asked_to_come_back(hook, api, twilio, state, monkeypatch):
    body, code = started(api, twilio)
    monkeypatch.setattr(webhooks, "INBOUND_WAIT_SECONDS", 0.2)
    form = sms(code)
    state.set(keys.inbound(form["MessageSid"]), "answering", ex=60)
    response = post_signed(hook, "/twilio/sms", form)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    assert response.json["error"]["code"] == "in_progress"
    assert api.get(body["links"]["self"]).json["status"] == "pending"


# --- Status callbacks ----------------------------------------------------------------------------

def status(hook, url: str, message_sid: str, message_status: str, **extra):
    form = {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "From": FROM_NUMBER, "To": PHONE,
            "MessageSid": message_sid, "SmsSid": message_sid, "MessageStatus": message_status,
            "SmsStatus": message_status, **extra}
    return post_signed(hook, url.removeprefix(PUBLIC), form, url=url)


def test_status_callbacks_record_delivery_in_order(api, hook, twilio, state):
    body, _ = started(api, twilio)
    message = twilio.wait_for_message(PHONE)
    url = message.status_callback

    def delivery():
        return api.get(body["links"]["self"]).json["deliveryStatus"]

    assert delivery() is None
    for queued in ("queued", "sending", "accepted"):
        assert status(hook, url, message.sid, queued).status_code == 204
    assert delivery() is None
    assert status(hook, url, message.sid, "sent").status_code == 204
    assert delivery() == "sent"
    assert status(hook, url, message.sid, "delivered").status_code == 204
    assert delivery() == "delivered"
    # Callbacks arrive out of order: a late `sent` does not hide `delivered`.
    assert status(hook, url, message.sid, "sent").status_code == 204
    assert delivery() == "delivered"
    recorded = events(state, body["id"], "delivery")
    assert [e["status"] for e in recorded] == ["sent", "delivered"]
    assert api.get(body["links"]["self"]).json["status"] == "pending"


def test_an_undelivered_sms_is_recorded_with_its_error(api, hook, twilio, state):
    body, _ = started(api, twilio)
    message = twilio.wait_for_message(PHONE)
    assert status(hook, message.status_callback, message.sid, "undelivered", ErrorCode="30003").status_code == 204
    assert status(hook, message.status_callback, message.sid, "sent").status_code == 204
    assert api.get(body["links"]["self"]).json["deliveryStatus"] == "undelivered"
    recorded = events(state, body["id"], "delivery")
    assert recorded == [{"t": recorded[0]["t"], "e": "delivery", "status": "undelivered", "error": 30003}]


def test_a_late_delivery_is_recorded_on_a_final_verification(api, hook, twilio):
    body, code = started(api, twilio)
    message = twilio.wait_for_message(PHONE)
    assert say(hook, code) == TEXTS["approved"]
    assert status(hook, message.status_callback, message.sid, "delivered").status_code == 204
    after = api.get(body["links"]["self"]).json
    assert (after["status"], after["deliveryStatus"]) == ("approved", "delivered")


def test_status_callbacks_for_other_messages_or_ids_change_nothing(api, hook, twilio, state):
    body, _ = started(api, twilio)
    message = twilio.wait_for_message(PHONE)
    assert status(hook, message.status_callback, "SM" + "f" * 32, "delivered").status_code == 204
    assert status(hook, f"{PUBLIC}/twilio/status?v=no-such-id", message.sid, "delivered").status_code == 204
    assert api.get(body["links"]["self"]).json["deliveryStatus"] is None
    assert state.exists(keys.state("no-such-id")) == 0


def test_status_callbacks_are_signed_and_complete(api, hook, twilio):
    body, _ = started(api, twilio)
    message = twilio.wait_for_message(PHONE)
    form = {"MessageSid": message.sid, "MessageStatus": "delivered"}
    path = message.status_callback.removeprefix(PUBLIC)
    refused = post_signed(hook, path, form, token="wrong-token")
    assert refused.status_code == 403
    assert hook.post(path, data=form).status_code == 403
    assert api.get(body["links"]["self"]).json["deliveryStatus"] is None
    no_id = post_signed(hook, "/twilio/status", form)
    assert no_id.status_code == 400
    assert no_id.json["error"]["fields"] == ["v"]
    no_status = post_signed(hook, path, {"MessageSid": message.sid})
    assert no_status.json["error"]["fields"] == ["MessageStatus"]


# --- Races: an SMS reply and an API check at once ------------------------------------------------

@pytest.fixture
def live(hook_app):
    """The app on a real threaded HTTP server, so requests really run at the same time."""
    with serving(hook_app) as url:
        yield url


def at_once(*calls):
    """Run each call in its own thread, released together; returns their results in order."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, call):
        with requests.Session() as session:
            barrier.wait()
            results[i] = call(session)

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def sms_call(live, form):
    def call(session):
        signature = sign(f"{PUBLIC}/twilio/sms", form)
        return session.post(f"{live}/twilio/sms", data=form, headers={"X-Twilio-Signature": signature}, timeout=10)
    return call


def api_check_call(live, verification_id, code):
    def call(session):
        return session.post(f"{live}/v1/verifications/{verification_id}/check", json={"code": code},
                            headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    return call


def test_two_wrong_codes_by_sms_and_api_at_once_spend_two_attempts(api, twilio, live, state):
    for _ in range(3):
        body, code = started(api, twilio, count=len(twilio.messages_to(PHONE)) + 1)
        wrong = wrong_code(code)
        by_sms, by_api = at_once(sms_call(live, sms(wrong)), api_check_call(live, body["id"], wrong))
        assert by_api.status_code == 200 and by_api.json()["approved"] is False
        assert ET.fromstring(by_sms.content).find("Message").text.startswith("That code is not right.")
        assert api.get(body["links"]["self"]).json["attemptsRemaining"] == 2
        assert sorted(e["via"] for e in responses(state, body["id"])) == ["api", "sms"]
        # Each sees a different count: one checked first, the other after.
        said = ET.fromstring(by_sms.content).find("Message").text
        left = {by_api.json()["attemptsRemaining"], int(re.search(r"You have ([0-9]+) attempt", said).group(1))}
        assert left == {2, 3}


def test_the_right_code_by_sms_and_a_wrong_one_by_api_at_once_approve_once(api, twilio, live, state):
    for _ in range(3):
        body, code = started(api, twilio, count=len(twilio.messages_to(PHONE)) + 1)
        by_sms, by_api = at_once(sms_call(live, sms(code)), api_check_call(live, body["id"], wrong_code(code)))
        assert ET.fromstring(by_sms.content).find("Message").text == TEXTS["approved"]
        after = api.get(body["links"]["self"]).json
        assert after["status"] == "approved"
        if by_api.status_code == 200:  # the API's wrong code came first
            assert by_api.json()["approved"] is False
            assert by_api.json()["attemptsRemaining"] == 3 == after["attemptsRemaining"]
            assert [e["via"] for e in responses(state, body["id"])] == ["api", "sms"]
        else:  # the SMS came first; the API finds it approved
            assert by_api.status_code == 409 and by_api.json()["error"]["status"] == "approved"
            assert after["attemptsRemaining"] == 4
            assert [e["via"] for e in responses(state, body["id"])] == ["sms"]


def test_one_message_delivered_three_times_at_once_counts_once(api, twilio, live, state):
    body, code = started(api, twilio)
    form = sms(wrong_code(code))
    replies = at_once(*(sms_call(live, form) for _ in range(3)))
    assert {r.status_code for r in replies} == {200}
    assert len({r.content for r in replies}) == 1
    assert api.get(body["links"]["self"]).json["attemptsRemaining"] == 3
    assert len(responses(state, body["id"])) == 1


def test_the_webhooks_are_in_the_openapi_document(hook_app):
    document = openapi.build(hook_app)
    sms_operation = document["paths"]["/twilio/sms"]["post"]
    assert "application/x-www-form-urlencoded" in sms_operation["requestBody"]["content"]
    assert "text/xml" in sms_operation["responses"]["200"]["content"]
    assert sms_operation["security"] == [{"twilioSignature": []}]
    assert "/twilio/status" in document["paths"]
    assert "twilioSignature" in document["components"]["securitySchemes"]
