"""The /v1 API end to end: the web app, a real worker, real Redis, the Twilio stand-in."""

import pytest

from tests.conftest import code_in, wait_for, wrong_code

PHONE = "+14155550100"


def start(client, phone=PHONE):
    response = client.post("/v1/verifications", json={"phone": phone})
    assert response.status_code == 202, response.json
    return response


def test_start_sends_a_code_that_approves(client, twilio, worker, state):
    response = start(client)
    body = response.json
    assert response.headers["Location"] == f"/v1/verifications/{body['id']}"
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
