"""Twilio failures: transient errors retried with backoff, permanent ones not, never a second SMS."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.conftest import code_in, wait_for
from tests.isolated import authorized, celery_for, iso_app, iso_celery, iso_env, workers  # noqa: F401
from tests.twilio_stub import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER
from verification import challenge, keys
from verification.redis_server import free_port
from verification.sms import SendError, TwilioSender
from verification.store import Store

PHONE = "+14155550123"


def start(client, phone=PHONE) -> dict:
    response = client.post("/v1/verifications", json={"phone": phone})
    assert response.status_code == 202, response.json
    return response.json


def settled(client, body: dict, status: str) -> dict:
    """The resource once it reached `status`."""
    return wait_for(lambda: (r := client.get(body["links"]["self"]).json)["status"] == status and r)


def test_503_twice_then_success_sends_one_sms(client, twilio, worker, state):
    twilio.plan(503, times=2)
    body = start(client)
    message = twilio.wait_for_message(PHONE)
    wait_for(lambda: client.get(body["links"]["self"]).json["sendStatus"] == "sent")
    assert len(twilio.requests) == 3
    assert len(twilio.messages_to(PHONE)) == 1
    events = [e["e"] for e in Store(state, 60).events(body["id"])]
    assert events.count("sms_retry") == 2 and events.count("sms_sent") == 1

    checked = client.post(body["links"]["check"], json={"code": code_in(message)})
    assert checked.json["approved"] is True


def test_429_waits_at_least_retry_after(client, twilio, worker, state):
    twilio.plan(429, error_code=20429, headers={"Retry-After": "2"})
    body = start(client)
    message = twilio.wait_for_message(PHONE)
    first, second = twilio.request_times
    assert second - first >= 2.0
    assert client.post(body["links"]["check"], json={"code": code_in(message)}).json["approved"] is True


def test_retry_after_beyond_the_deadline_fails_at_once(make_app, twilio, worker):
    client = authorized(make_app(VERIFICATION_WINDOW_SECONDS=3))
    twilio.plan(429, error_code=20429, headers={"Retry-After": "30"})
    body = start(client)
    failed = settled(client, body, "failed")
    assert failed["sendStatus"] == "failed"
    assert "429" in failed["failure"]["reason"]
    assert failed["failure"]["twilioErrorCode"] == 20429
    assert len(twilio.requests) == 1


def test_transient_errors_until_the_deadline_end_failed(make_app, twilio, worker):
    client = authorized(make_app(VERIFICATION_WINDOW_SECONDS=3))
    twilio.plan(503, times=100)
    body = start(client)
    failed = settled(client, body, "failed")
    assert failed["sendStatus"] == "failed"
    assert failed["failure"]["reason"].startswith("Twilio answered 503")
    # Bounded by the deadline and by SEND_MAX_TRIES, whichever comes first.
    assert 1 <= len(twilio.requests) <= 6
    assert twilio.messages == []


@pytest.mark.parametrize("status, error_code", [
    (400, 21211),  # invalid To
    (400, 21614),  # not a mobile number
    (400, 21610),  # unsubscribed (STOP)
    (400, 21608),  # unverified number on a trial account
    (400, 21606),  # From cannot send SMS
    (401, 20003),  # authentication
])
def test_permanent_errors_are_not_retried(client, twilio, worker, state, status, error_code):
    twilio.plan(status, error_code=error_code, times=5)
    body = start(client)
    failed = settled(client, body, "failed")
    assert failed["sendStatus"] == "failed"
    assert failed["failure"]["twilioErrorCode"] == error_code
    assert str(error_code) in failed["failure"]["reason"]
    # Final, so no later run of the task can send: the one request is all there will be.
    assert len(twilio.requests) == 1
    assert client.post(body["links"]["check"], json={"code": "0000"}).status_code == 409


class Refusing:
    """A sender that Twilio keeps refusing for now."""

    def __init__(self):
        self.calls = 0

    def send(self, to, body, status_callback=None):
        self.calls += 1
        raise SendError("Twilio answered 503 (error None)", transient=True)


def test_send_tries_are_bounded(state):
    """SEND_MAX_TRIES counts requests; each refused try leaves the ledger queued and no hash behind."""
    store = Store(state, 60)
    store.create("v1", PHONE, 60_000, 4, 4)
    sender = Refusing()
    for tries in range(4):
        with pytest.raises(challenge.RetryLater) as later:
            challenge.send(store, sender, "secret", "v1", tries=tries, max_tries=5)
        assert later.value.countdown <= 2 ** tries
        record = state.hgetall(keys.state("v1"))
        assert record["send"] == "queued" and not record.get("hash")  # emptied, never deleted
    assert challenge.send(store, sender, "secret", "v1", tries=4, max_tries=5) == "failed"
    assert sender.calls == 5
    assert store.get("v1").status == "failed" and store.get("v1").send_status == "failed"


def test_backoff_has_jitter_a_cap_and_retry_after_as_a_floor():
    assert all(0 <= challenge.backoff(3) <= 8 for _ in range(100))
    assert len({challenge.backoff(3) for _ in range(20)}) > 1
    assert all(challenge.backoff(20) <= 30 for _ in range(100))
    assert all(challenge.backoff(0, retry_after=7) >= 7 for _ in range(100))


# The sender against sockets that fail in each way a network can.

def sender_for(url: str, timeout: float = 1) -> TwilioSender:
    return TwilioSender(ACCOUNT_SID, AUTH_TOKEN, from_number=FROM_NUMBER, base_url=url, timeout=timeout)


class Listener:
    """A TCP server that reads a request and then `hangs` (never answers) or closes the connection."""

    def __init__(self, behaviour: str):
        self.behaviour = behaviour
        self.server = socket.create_server(("127.0.0.1", 0))
        self.received = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.getsockname()[1]}"

    def _serve(self):
        connection, _ = self.server.accept()
        with connection:
            connection.recv(65536)
            self.received.set()
            if self.behaviour == "hang":
                self.release.wait(10)

    def close(self):
        self.release.set()
        self.thread.join(10)
        self.server.close()


def test_refused_connection_is_transient_and_never_sent():
    sender = sender_for(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(SendError) as error:
        sender.send(PHONE, "Your verification code is 1234")
    assert error.value.transient and not error.value.maybe_sent
    sender.http.session.close()


@pytest.mark.parametrize("behaviour", ["hang", "close"])
def test_no_answer_after_the_request_left_is_maybe_sent(behaviour):
    """A read timeout or a dropped connection: Twilio may have the message, so never retry it."""
    listener = Listener(behaviour)
    sender = sender_for(listener.url)
    try:
        with pytest.raises(SendError) as error:
            sender.send(PHONE, "Your verification code is 1234")
        assert listener.received.is_set()
        assert error.value.maybe_sent and not error.value.transient
    finally:
        listener.close()
        sender.http.session.close()


@pytest.mark.slow
def test_timeout_after_twilio_accepted_sends_no_second_sms(iso_app, workers, twilio, state):
    """The stub accepts after the client gave up: the ledger stays `sending`, the code still approves."""
    workers(TWILIO_TIMEOUT_SECONDS=1)
    client = authorized(iso_app(VERIFICATION_WINDOW_SECONDS=30))
    twilio.delay = 2
    body = start(client)
    message = twilio.wait_for_message(PHONE)
    wait_for(lambda: any(e["e"] == "sms_unknown" for e in Store(state, 60).events(body["id"])))
    resource = client.get(body["links"]["self"]).json
    assert resource["status"] == "pending" and resource["sendStatus"] == "sending"
    assert len(twilio.requests) == 1

    twilio.delay = 0
    checked = client.post(body["links"]["check"], json={"code": code_in(message)})
    assert checked.json["approved"] is True
    assert len(twilio.requests) == 1


def test_broker_down_at_start_is_a_503_and_leaves_nothing_pending(make_app, state):
    app = make_app()
    dead = celery_for(f"redis://127.0.0.1:{free_port()}/0")
    app.extensions["verification"].dispatcher.celery = dead
    response = authorized(app).post("/v1/verifications", json={"phone": PHONE})
    assert response.status_code == 503
    assert response.json["error"]["code"] == "unavailable"
    assert response.headers["Retry-After"]
    assert state.zcard(keys.DEADLINES) == 0
    (key,) = state.keys(keys.state("*"))
    assert state.hget(key, "status") == "failed"
    assert state.hget(key, "send") == "failed"
