"""The real `azure-functions-durable` client drives the service over HTTP, its key in the base URL."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import azure.durable_functions as df
import pytest
from azure.durable_functions.models.utils import http_utils

from tests.conftest import API_KEY, code_in, serving

Status = df.OrchestrationRuntimeStatus

PHONE = "+14255550123"
ORCHESTRATION = "E4_SmsPhoneVerification"


@pytest.fixture
def base_url(make_app):
    """The app on a real HTTP server on a free port, as the client needs one."""
    with serving(make_app()) as url:
        yield url


def binding(base_url: str) -> str:
    """The JSON the Functions host hands an orchestration client binding, pointing at our server."""
    host = base_url.removeprefix("http://")
    management = f"{base_url}/runtime/webhooks/durabletask/instances/INSTANCEID?taskHub=DurableFunctionsHub"
    return json.dumps({
        "taskHubName": "DurableFunctionsHub",
        "creationUrls": {"createNewInstancePostUri": f"{base_url}/runtime/webhooks/durabletask/orchestrators/"
                                                     "{functionName}[/{instanceId}]"},
        "managementUrls": {"id": "INSTANCEID", "statusQueryGetUri": management},
        # The client carries no credentials of its own: the key rides in the URL, sent as HTTP Basic.
        "rpcBaseUrl": f"http://{API_KEY}:@{host}/durabletask/",
    })


def test_the_real_client(base_url, twilio, worker, state):
    client = df.DurableOrchestrationClient(binding(base_url))
    # Every call on one event loop (the client shares one aiohttp session per module), in a thread of its
    # own: another test's sync Playwright may still hold a running loop in this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _drive(client, twilio)).result()


async def _drive(client, twilio):
    try:
        await _scenario(client, twilio)
    finally:
        await http_utils._close_session()


async def _scenario(client, twilio):
    since = datetime.now(timezone.utc).replace(microsecond=0)
    instance_id = await client.start_new(ORCHESTRATION, None, PHONE)
    code = code_in(await asyncio.to_thread(twilio.wait_for_message, PHONE))

    running = await client.get_status(instance_id, show_history=True)
    assert running.runtime_status == Status.Running
    assert running.input_ == PHONE
    assert running.custom_status == {"status": "pending", "attemptsRemaining": 4}
    assert running.historyEvents[0]["EventType"] == "ExecutionStarted"

    # The client encodes the value twice: 2168 arrives as the JSON string "2168".
    await client.raise_event(instance_id, "SmsChallengeResponse", int(code))
    done = await client.get_status(instance_id, show_history=True, show_history_output=True)
    assert (done.runtime_status, done.output) == (Status.Completed, True)
    assert done.historyEvents[-1] == {"EventType": "ExecutionCompleted", "OrchestrationStatus": "Completed",
                                      "Timestamp": done.historyEvents[-1]["Timestamp"], "Result": True}
    assert done.created_time is not None and done.last_updated_time >= done.created_time
    with pytest.raises(Exception, match="is gone"):
        await client.raise_event(instance_id, "SmsChallengeResponse", int(code))

    other = await client.start_new(ORCHESTRATION, "second-try", PHONE)
    assert other == "second-try"
    await client.terminate(other, "Changed my mind")
    await client.terminate(other, "410 is fine for the client")
    terminated = await client.get_status(other)
    assert (terminated.runtime_status, terminated.output) == (Status.Terminated, "Changed my mind")

    found = await client.get_status_by(created_time_from=since, runtime_status=[Status.Completed, Status.Terminated])
    assert {status.instance_id for status in found} == {instance_id, other}
    assert await client.get_status_by(runtime_status=[Status.Running]) == []

    with pytest.raises(Exception, match="phone"):
        await client.start_new(ORCHESTRATION, None, "not a number")
    assert not await client.get_status("no-such-instance")

    assert (await client.purge_instance_history(instance_id)).instances_deleted == 1
    assert (await client.purge_instance_history(instance_id)).instances_deleted == 0
    assert not await client.get_status(instance_id)
    assert (await client.purge_instance_history_by(created_time_from=since)).instances_deleted == 1
