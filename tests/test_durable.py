"""The Durable Functions HTTP API end to end: the sample's requests and answers, over real Redis and a worker."""

from __future__ import annotations

import base64
import json
import re

import pytest

from tests.conftest import API_KEY, code_in, wait_for, wrong_code
from verification import keys

PHONE = "+14255550123"
PUBLIC = "https://verify.example.com"
START = "/orchestrators/E4_SmsPhoneVerification"
HUB = "/runtime/webhooks/durabletask"
QUERY = f"taskHub=DurableFunctionsHub&connection=Storage&code={API_KEY}"
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
STATUS_KEYS = {"name", "instanceId", "runtimeStatus", "input", "output", "customStatus", "createdTime",
               "lastUpdatedTime"}


def body_of(response):
    """The body as JSON, or None when empty: the Durable client parses every body, so nothing else will do."""
    data = response.get_data()
    return json.loads(data) if data else None


@pytest.fixture
def app(make_app):
    return make_app(PUBLIC_BASE_URL=PUBLIC)


@pytest.fixture
def anonymous(app):
    return app.test_client()


def start(client, phone=PHONE, path=START, **kwargs):
    response = client.post(path, data=json.dumps(phone), content_type="application/json", **kwargs)
    assert response.status_code == 202, body_of(response)
    return body_of(response)


def raise_event(client, instance_id, data, event="SmsChallengeResponse"):
    return client.post(f"{HUB}/instances/{instance_id}/raiseEvent/{event}", data=data,
                       content_type="application/json")


def status(client, instance_id, query=""):
    return client.get(f"{HUB}/instances/{instance_id}{query}")


def attempts_left(state, instance_id) -> int:
    return int(state.hget(keys.state(instance_id), "attempts"))


def test_the_samples_start_raise_event_and_status(anonymous, twilio, worker, state):
    # POST http://{host}/orchestrators/E4_SmsPhoneVerification with "+1425XXXXXXX", the key as `code=`.
    response = anonymous.post(f"{START}?code={API_KEY}", data=f'"{PHONE}"', content_type="application/json")
    assert response.status_code == 202
    links = body_of(response)
    instance_id = links["id"]
    instance = f"{PUBLIC}{HUB}/instances/{instance_id}"
    assert links == {
        "id": instance_id,
        "statusQueryGetUri": f"{instance}?{QUERY}",
        "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{QUERY}",
        "terminatePostUri": f"{instance}/terminate?reason={{text}}&{QUERY}",
        "purgeHistoryDeleteUri": f"{instance}?{QUERY}",
    }
    assert response.headers["Location"] == links["statusQueryGetUri"]
    assert response.headers["Retry-After"] == "10"

    running = anonymous.get(links["statusQueryGetUri"])
    assert running.status_code == 202
    assert running.headers["Location"] == links["statusQueryGetUri"]
    assert running.headers["Retry-After"] == "5"
    assert body_of(running)["runtimeStatus"] == "Running"

    # The SMS holds the code, e.g. 2168; the event's body is the bare number, as the sample sends it.
    code = code_in(twilio.wait_for_message(PHONE))
    event_uri = links["sendEventPostUri"].replace("{eventName}", "SmsChallengeResponse")
    raised = anonymous.post(event_uri, data=str(int(code)), content_type="application/json")
    assert raised.status_code == 202
    assert raised.get_data() == b""

    done = anonymous.get(links["statusQueryGetUri"])
    assert done.status_code == 200
    body = body_of(done)
    assert set(body) == STATUS_KEYS
    assert body["runtimeStatus"] == "Completed"
    assert body["input"] == PHONE
    assert body["output"] is True
    assert body["name"] == "E4_SmsPhoneVerification" and body["instanceId"] == instance_id
    assert body["customStatus"] == {"status": "approved", "attemptsRemaining": 4}
    assert TIME.match(body["createdTime"]) and TIME.match(body["lastUpdatedTime"])


def test_the_samples_literal_2168(client, twilio, worker, state):
    instance_id = start(client)["id"]
    code = code_in(twilio.wait_for_message(PHONE))
    assert raise_event(client, instance_id, "2168").status_code == 202
    body = body_of(status(client, instance_id))
    if code == "2168":
        assert (body["runtimeStatus"], body["output"]) == ("Completed", True)
    else:
        assert body["runtimeStatus"] == "Running"
        assert body["customStatus"] == {"status": "pending", "attemptsRemaining": 3}


@pytest.mark.parametrize("encode", [
    lambda code: str(int(code)),                 # a JSON number: 42 for 0042
    lambda code: json.dumps(code),               # a JSON string, leading zeros kept
    lambda code: json.dumps(str(int(code))),     # a string without them
    lambda code: json.dumps(json.dumps(code)),   # doubly encoded, as the Python client sends a string
], ids=["number", "string", "unpadded-string", "double-encoded"])
def test_every_encoding_of_the_right_code_approves(client, twilio, worker, state, encode):
    instance_id = start(client)["id"]
    code = code_in(twilio.wait_for_message(PHONE))
    assert raise_event(client, instance_id, encode(code)).status_code == 202
    assert body_of(status(client, instance_id))["output"] is True


def test_wrong_codes_then_out_of_attempts_is_completed_false(client, twilio, worker, state):
    instance_id = start(client)["id"]
    code = code_in(twilio.wait_for_message(PHONE))
    for _ in range(4):
        assert raise_event(client, instance_id, str(int(wrong_code(code)))).status_code == 202
    response = status(client, instance_id)
    assert response.status_code == 200
    body = body_of(response)
    assert (body["runtimeStatus"], body["output"]) == ("Completed", False)
    assert body["customStatus"] == {"status": "max_attempts_reached", "attemptsRemaining": 0}
    gone = raise_event(client, instance_id, str(int(code)))
    assert gone.status_code == 410
    assert body_of(gone)["error"]["status"] == "max_attempts_reached"


@pytest.mark.parametrize("data", [
    '"abc"', "12.5", "-1", "100000", "true", "null", '""', "[1]", '{"code": 1}', '"١٢٣٤"', '"+42"',
    '"\\"12a\\""', "1e3", "",
])
def test_a_value_that_is_not_a_code_is_400_and_costs_nothing(client, state, data):
    instance_id = start(client)["id"]
    response = raise_event(client, instance_id, data)
    assert response.status_code == 400
    assert body_of(response)["error"]["code"] == "invalid_code"
    assert body_of(response)["ExceptionMessage"]
    assert attempts_left(state, instance_id) == 4


@pytest.mark.parametrize("data", ["2168,", "{", b"\xff\xfe", "'2168'"])
def test_a_body_that_is_not_json_is_400(client, state, data):
    instance_id = start(client)["id"]
    response = raise_event(client, instance_id, data)
    assert response.status_code == 400
    assert body_of(response)["error"]["code"] == "invalid_json"
    assert attempts_left(state, instance_id) == 4


def test_another_event_name_is_400(client, state):
    instance_id = start(client)["id"]
    response = raise_event(client, instance_id, "2168", event="Approval")
    assert response.status_code == 400
    assert body_of(response)["error"]["code"] == "unknown_event"
    assert attempts_left(state, instance_id) == 4


@pytest.mark.parametrize("instance_id", ["0" * 32, "no{such}id", "x" * 101])
def test_unknown_instances_are_404_everywhere(client, state, instance_id):
    for response in (status(client, instance_id), raise_event(client, instance_id, "2168"),
                     client.post(f"{HUB}/instances/{instance_id}/terminate?reason=x"),
                     client.delete(f"/durabletask/instances/{instance_id}")):
        assert response.status_code == 404
        assert body_of(response)["error"]["code"] == "not_found"


def test_terminate_then_410(client, state):
    instance_id = start(client)["id"]
    response = client.post(f"/durabletask/instances/{instance_id}/terminate?reason=Changed%20my%20mind")
    assert response.status_code == 202
    assert response.get_data() == b""
    body = body_of(status(client, instance_id))
    assert (body["runtimeStatus"], body["output"]) == ("Terminated", "Changed my mind")
    assert body["customStatus"]["status"] == "canceled"
    history = body_of(status(client, instance_id, "?showHistory=true"))["historyEvents"]
    assert [e["Reason"] for e in history if e["EventType"] == "ExecutionTerminated"] == ["Changed my mind"]
    for again in (client.post(f"{HUB}/instances/{instance_id}/terminate"), raise_event(client, instance_id, "1")):
        assert again.status_code == 410
        assert body_of(again)["error"]["status"] == "canceled"


def test_start_errors_carry_exception_message(client, state):
    cases = [
        (START, None, "A phone number input is required."),
        (START, '""', "A phone number input is required."),
        (START, "not json", "The body is not valid JSON."),
        (START, "14255550123", "as a JSON string"),
        (START, '"+1 555"', "phone"),
        ("/api/orchestrators/E1_HelloSequence", json.dumps(PHONE), "E1_HelloSequence"),
        (f"{START}/has%20space", json.dumps(PHONE), "instance id"),
        (f"{START}/{'x' * 101}", json.dumps(PHONE), "instance id"),
        (f"{START}?timeout=soon", json.dumps(PHONE), "timeout"),
        (f"{START}?timeout=5&pollingInterval=-1", json.dumps(PHONE), "pollingInterval"),
    ]
    for path, data, message in cases:
        response = client.post(path, data=data, content_type="application/json")
        assert response.status_code == 400, path
        assert message in body_of(response)["ExceptionMessage"], (path, body_of(response))
    assert state.zcard(keys.CREATED) == 0


def test_the_python_clients_double_encoded_input_and_every_start_route(client, state):
    for path in ("/api" + START, START, HUB + START, "/durabletask" + START):
        links = start(client, json.dumps(PHONE), path=path)
        assert body_of(status(client, links["id"]))["input"] == PHONE


def test_custom_instance_ids_conflict_while_running_and_replace_once_final(client, twilio, worker, state):
    links = start(client, path=f"/api{START}/order-42.a:b_c")
    assert links["id"] == "order-42.a:b_c"
    again = client.post(f"/api{START}/order-42.a:b_c", json=PHONE)
    assert again.status_code == 409
    assert "already running" in body_of(again)["ExceptionMessage"]

    assert client.post(f"{HUB}/instances/order-42.a:b_c/terminate").status_code == 202
    replaced = start(client, "+14255550124", path=f"/api{START}/order-42.a:b_c")
    assert replaced["id"] == "order-42.a:b_c"
    body = body_of(status(client, "order-42.a:b_c", "?showHistory=true"))
    assert (body["runtimeStatus"], body["input"]) == ("Running", "+14255550124")
    assert [e["EventType"] for e in body["historyEvents"]][:1] == ["ExecutionStarted"]
    assert "ExecutionTerminated" not in {e["EventType"] for e in body["historyEvents"]}
    assert state.zrange(keys.CREATED, 0, -1) == ["order-42.a:b_c"]
    # The first number's index names no verification now; the time of its start still counts.
    assert state.get(keys.phone(PHONE)).split(" ")[0] == ""


def test_wait_for_completion_returns_the_status_when_it_ends_in_time(client, twilio, worker, state):
    twilio.plan(400, error_code=21211)  # Twilio: not a valid 'To' number; the send fails for good
    response = client.post(f"{START}?timeout=15&pollingInterval=0.1", json=PHONE)
    assert response.status_code == 200
    body = body_of(response)
    assert set(body) == STATUS_KEYS
    assert body["runtimeStatus"] == "Failed"
    assert "21211" in body["output"]
    history = body_of(status(client, body["instanceId"], "?showHistory=True"))["historyEvents"]
    assert [e["EventType"] for e in history] == ["ExecutionStarted", "TaskFailed", "ExecutionCompleted"]
    assert history[-1]["OrchestrationStatus"] == "Failed"


def test_wait_for_completion_is_capped(make_app, state):
    client = make_app(DURABLE_MAX_WAIT_SECONDS=0).test_client()
    response = client.post(f"{START}?timeout=3600&pollingInterval=1", json=PHONE,
                           headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 202
    assert set(body_of(response)) == {"id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri",
                                      "purgeHistoryDeleteUri"}


def test_history_tells_what_happened_and_never_the_code(client, twilio, worker, state):
    instance_id = start(client)["id"]
    code = code_in(twilio.wait_for_message(PHONE))
    wait_for(lambda: state.hget(keys.state(instance_id), "send") == "sent")
    raise_event(client, instance_id, json.dumps(wrong_code(code)))
    raise_event(client, instance_id, json.dumps(code))
    for show in ("true", "True", "TRUE"):
        body = body_of(status(client, instance_id, f"?showHistory={show}&showHistoryOutput={show}"))
        history = body["historyEvents"]
        assert [e["EventType"] for e in history] == [
            "ExecutionStarted", "TaskCompleted", "EventRaised", "EventRaised", "ExecutionCompleted"]
        assert history[0] == {"EventType": "ExecutionStarted", "FunctionName": "E4_SmsPhoneVerification",
                              "Timestamp": history[0]["Timestamp"], "Input": PHONE}
        assert history[1] == {"EventType": "TaskCompleted", "FunctionName": "E4_SendSmsChallenge",
                              "Timestamp": history[1]["Timestamp"]}
        assert [(e["Name"], e["Channel"], e["CodeMatched"]) for e in history[2:4]] == [
            ("SmsChallengeResponse", "durable", False), ("SmsChallengeResponse", "durable", True)]
        assert history[4] == {"EventType": "ExecutionCompleted", "OrchestrationStatus": "Completed",
                              "Timestamp": history[4]["Timestamp"], "Result": True}
        assert all(TIME.match(e["Timestamp"]) for e in history)
        text = json.dumps([{k: v for k, v in e.items() if k not in ("Timestamp", "Input")} for e in history])
        assert code not in text and wrong_code(code) not in text
    for hidden in ("", "?showHistory=false", "?showHistory=yes"):
        assert "historyEvents" not in body_of(status(client, instance_id, hidden))
    without_output = body_of(status(client, instance_id, "?showHistory=true"))["historyEvents"]
    assert "Input" not in without_output[0] and "Result" not in without_output[-1]
    assert body_of(status(client, instance_id, "?showInput=false"))["input"] is None


def test_an_expired_verification_shows_the_timer_firing(make_app, twilio, worker, state):
    client = make_app(VERIFICATION_WINDOW_SECONDS=1).test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {API_KEY}"
    instance_id = start(client)["id"]

    def completed():
        body = body_of(status(client, instance_id, "?showHistory=true"))
        return body if body["runtimeStatus"] == "Completed" else None

    done = wait_for(completed)
    assert done["output"] is False
    assert done["customStatus"]["status"] == "expired"
    assert [e["EventType"] for e in done["historyEvents"]][-2:] == ["TimerFired", "ExecutionCompleted"]


@pytest.mark.parametrize("how", ["bearer", "query", "basic"])
def test_every_key_form_is_accepted_and_carried_into_the_links(anonymous, state, how):
    headers, query = {}, ""
    if how == "bearer":
        headers["Authorization"] = f"Bearer {API_KEY}"
    elif how == "query":
        query = f"?code={API_KEY}"
    else:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{API_KEY}:".encode()).decode()
    links = start(anonymous, path=f"/durabletask{START}{query}", headers=headers)
    assert links["statusQueryGetUri"].endswith(f"&code={API_KEY}")
    assert anonymous.get(f"/durabletask/instances/{links['id']}{query}", headers=headers).status_code == 202


@pytest.mark.parametrize("headers, query", [
    ({}, ""),
    ({"Authorization": "Basic " + base64.b64encode(b"wrong:").decode()}, ""),
    ({}, "?code=wrong"),
])
def test_no_valid_key_is_401_json(anonymous, state, headers, query):
    for response in (anonymous.post(f"{START}{query}", json=PHONE, headers=headers),
                     anonymous.get(f"/durabletask/instances/{query}", headers=headers)):
        assert response.status_code == 401
        assert body_of(response)["error"]["code"] == "unauthorized"
    assert state.zcard(keys.CREATED) == 0


def test_links_fall_back_to_the_request_host_and_omit_a_missing_key(make_app, state):
    client = make_app(DEVELOPMENT_MODE=True, API_KEYS="").test_client()
    links = start(client)
    assert links["statusQueryGetUri"] == (
        f"http://localhost{HUB}/instances/{links['id']}?taskHub=DurableFunctionsHub&connection=Storage")


def list_all(client, query):
    pages, token = [], None
    while True:
        response = client.get(f"/durabletask/instances/{query}",
                              headers={"x-ms-continuation-token": token} if token else {})
        assert response.status_code == 200
        pages.append([item["instanceId"] for item in body_of(response)])
        token = response.headers.get("x-ms-continuation-token")
        if not token:
            return pages


def test_listing_pages_in_creation_order_and_filters(client, state):
    ids = [start(client, f"+1425555012{n}")["id"] for n in range(5)]
    created = sorted(ids, key=lambda i: (int(state.hget(keys.state(i), "created")), i))
    pages = list_all(client, "?top=2")
    assert [len(page) for page in pages][:3] == [2, 2, 1]
    assert [i for page in pages for i in page] == created

    for instance_id in created[:2]:
        client.post(f"/durabletask/instances/{instance_id}/terminate")
    assert sum(list_all(client, "?runtimeStatus=Terminated"), []) == created[:2]
    assert sum(list_all(client, "?runtimeStatus=Running,Pending"), []) == created[2:]
    assert sum(list_all(client, "?createdTimeFrom=2999-01-01T00:00:00Z"), []) == []
    assert sum(list_all(client, "?createdTimeTo=2000-01-01T00:00:00.000000Z"), []) == []
    everything = body_of(client.get("/runtime/webhooks/durabletask/instances"))
    assert {item["instanceId"] for item in everything} == set(ids)
    assert all(set(item) == STATUS_KEYS for item in everything)
    for bad in ("?top=0", "?top=1001", "?top=two", "?runtimeStatus=Sleeping", "?createdTimeFrom=yesterday"):
        response = client.get(f"/durabletask/instances/{bad}")
        assert response.status_code == 400, bad
        assert body_of(response)["error"]["code"] == "invalid_parameter"
    bad_token = client.get("/durabletask/instances/", headers={"x-ms-continuation-token": "bm90IG91cnM="})
    assert bad_token.status_code == 400


def test_listing_by_instance_id_prefix_and_dropping_vanished_records(client, state):
    start(client, path=f"{START}/team-a-1")
    start(client, "+14255550124", path=f"{START}/team-b-1")
    state.zadd(keys.CREATED, {"vanished": 1})
    assert sum(list_all(client, "?instanceIdPrefix=team-a"), []) == ["team-a-1"]
    assert sum(list_all(client, ""), []) == ["team-a-1", "team-b-1"]
    assert state.zscore(keys.CREATED, "vanished") is None


def test_purge_one_deletes_every_key_and_index_entry(client, state):
    older = start(client)["id"]
    newer = start(client)["id"]  # supersedes the older one; the number's index points at the newer
    purged = client.delete(f"{HUB}/instances/{older}")
    assert (purged.status_code, body_of(purged)) == (200, {"instancesDeleted": 1})
    index = state.get(keys.phone(PHONE)).split(" ")
    assert index[0] == newer and len(index) == 3  # the newer's id, then both starts' times
    assert client.delete(f"/durabletask/instances/{newer}").status_code == 200
    # Only the times of the number's starts are left, for its rate limit: a purge gives it no new starts.
    assert state.keys("*verif*") == [keys.phone(PHONE)]
    assert state.get(keys.phone(PHONE)) == " " + " ".join(index[1:])
    again = client.delete(f"/durabletask/instances/{newer}")
    assert again.status_code == 404
    assert status(client, newer).status_code == 404


def test_purge_many_by_time_and_status(client, state):
    ids = [start(client, f"+1425555012{n}")["id"] for n in range(3)]
    client.post(f"/durabletask/instances/{ids[0]}/terminate")
    assert client.delete("/durabletask/instances/").status_code == 400
    none = client.delete("/durabletask/instances/?createdTimeFrom=2999-01-01T00:00:00Z")
    assert none.status_code == 404
    response = client.delete("/durabletask/instances/?createdTimeFrom=2000-01-01T00:00:00Z&runtimeStatus=Terminated")
    assert (response.status_code, body_of(response)) == (200, {"instancesDeleted": 1})
    assert status(client, ids[0]).status_code == 404
    response = client.delete("/durabletask/instances/?createdTimeFrom=2000-01-01T00:00:00%2B00:00")
    assert (response.status_code, body_of(response)) == (200, {"instancesDeleted": 2})
    # What is left are the numbers' start times, for their rate limit, under no verification's id.
    indexes = sorted(keys.phone(f"+1425555012{n}") for n in range(3))
    assert sorted(state.keys("*verif*")) == indexes
    assert all(state.get(index).startswith(" ") for index in indexes)


def test_other_methods_and_routes_answer_json(client, state):
    for response in (client.put("/durabletask/instances/abc"), client.get("/durabletask/nothing"),
                     client.get(f"/api{START}")):
        assert response.status_code in (404, 405)
        assert "error" in body_of(response)


def test_real_responses_match_the_documented_schemas(client, app, state):
    from jsonschema import Draft202012Validator
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    from verification import openapi

    spec = openapi.build(app)
    registry = Registry().with_resource("urn:spec", DRAFT202012.create_resource(spec))

    def valid(name, body):
        Draft202012Validator({"$ref": f"urn:spec#/components/schemas/{name}"}, registry=registry).validate(body)

    links = start(client)
    valid("DurableCheckStatus", links)
    valid("DurableStatus", body_of(status(client, links["id"], "?showHistory=true")))
    client.post(f"{HUB}/instances/{links['id']}/terminate")
    valid("DurableStatus", body_of(status(client, links["id"], "?showHistory=true&showHistoryOutput=true")))
    for item in body_of(client.get("/durabletask/instances/")):
        valid("DurableStatus", item)
    valid("DurableError", body_of(client.post(START, data="")))
    valid("PurgeResult", body_of(client.delete(f"{HUB}/instances/{links['id']}")))
    documented = spec["paths"][f"{HUB}/instances/{{instance_id}}"]["get"]["responses"]
    assert {"200", "202", "401", "404", "503"} <= set(documented)


def test_a_start_refused_as_a_duplicate_spends_no_rate_limit(make_app, worker, twilio):
    client = make_app(LIMIT_STARTS_PER_PHONE="2/minute").test_client()
    auth = {"Authorization": f"Bearer {API_KEY}"}
    url = "/orchestrators/E4_SmsPhoneVerification"
    assert client.post(f"{url}/dup-1", json="+14155550188", headers=auth).status_code == 202
    for _ in range(3):
        assert client.post(f"{url}/dup-1", json="+14155550188", headers=auth).status_code == 409
    assert client.post(url, json="+14155550188", headers=auth).status_code == 202
    assert client.post(url, json="+14155550188", headers=auth).status_code == 429
