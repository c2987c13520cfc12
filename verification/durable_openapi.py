"""The OpenAPI description of the Durable Functions routes, one entry per prefix they are served under."""

from __future__ import annotations

from verification.durable_status import EVENT, MANAGEMENT_PREFIXES, ORCHESTRATOR, RUNTIME_STATUSES, START_PREFIXES
from verification.openapi import errors, json_content, ref

_TAGS = ["Durable Functions"]
# Each prefix's word in operationIds, which must be unique across the document.
_NAMES = {"/api": "Api", "": "Sample", "/runtime/webhooks/durabletask": "Webhook", "/durabletask": "Rpc"}
_TIME = {"type": "string", "description": "yyyy-MM-ddTHH:mm:ssZ (UTC).", "examples": ["2017-06-29T19:10:49Z"]}


def _query(name: str, description: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


def _path(name: str, description: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema or {"type": "string"}}


_INSTANCE = _path("instance_id", "The instance id: the verification's id.",
                  {"type": "string", "pattern": r"^[A-Za-z0-9._:-]{1,100}$"})
_FLAG = {"type": "string", "description": "true or false, any case.", "examples": ["true", "True"]}
_URL_FORMS = [_query("taskHub", "Accepted and ignored: one task hub."),
              _query("connection", "Accepted and ignored."),
              _query("code", "The API key, as Azure Functions URLs carry it.")]
_FILTERS = [
    _query("createdTimeFrom", "Created at or after this ISO 8601 time."),
    _query("createdTimeTo", "Created at or before this ISO 8601 time."),
    _query("runtimeStatus", f"Comma-separated, any of: {', '.join(RUNTIME_STATUSES)}."),
]
_STATUS = json_content(ref("DurableStatus"))
_HEADER = {"schema": {"type": "string"}}

OPENAPI_COMPONENTS = {"schemas": {
    "DurableStatus": {
        "type": "object",
        "required": ["name", "instanceId", "runtimeStatus", "input", "output", "customStatus", "createdTime",
                     "lastUpdatedTime"],
        "properties": {
            "name": {"const": ORCHESTRATOR},
            "instanceId": {"type": "string"},
            "runtimeStatus": {"type": "string", "enum": ["Running", "Completed", "Terminated", "Failed"],
                              "description": "pending: Running; approved, expired, max_attempts_reached: "
                                             "Completed; canceled: Terminated; failed: Failed."},
            "input": {"type": ["string", "null"],
                      "description": "The phone number (E.164); null with showInput=false."},
            "output": {"type": ["boolean", "string", "null"],
                       "description": "true approved; false expired or out of attempts; the reason when "
                                      "Terminated or Failed; null while Running."},
            "customStatus": {"type": "object", "required": ["status", "attemptsRemaining"],
                             "properties": {"status": {"type": "string"},
                                            "attemptsRemaining": {"type": "integer", "minimum": 0}}},
            "createdTime": _TIME,
            "lastUpdatedTime": _TIME,
            "historyEvents": {"type": "array", "items": {
                "type": "object", "required": ["EventType", "Timestamp"],
                "properties": {"EventType": {"type": "string"}, "Timestamp": _TIME},
                "description": "ExecutionStarted, TaskCompleted (SMS sent), TaskFailed, EventRaised (a response: "
                               "its Channel and whether the code matched, never the code), TimerFired, "
                               "ExecutionTerminated, ExecutionCompleted."}},
        },
    },
    "DurableCheckStatus": {
        "type": "object",
        "required": ["id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri", "purgeHistoryDeleteUri"],
        "properties": {"id": {"type": "string"},
                       **{name: {"type": "string", "format": "uri"} for name in (
                           "statusQueryGetUri", "sendEventPostUri", "terminatePostUri", "purgeHistoryDeleteUri")}},
    },
    "DurableError": {
        "allOf": [ref("Error"), {"type": "object", "required": ["ExceptionMessage"],
                                 "properties": {"Message": {"type": "string"},
                                                "ExceptionMessage": {"type": "string"}}}],
    },
    "PurgeResult": {"type": "object", "required": ["instancesDeleted"],
                    "properties": {"instancesDeleted": {"type": "integer", "minimum": 1}}},
}}


def _error(description: str) -> dict:
    return {"description": description, "content": json_content(ref("DurableError"))}


def _start(name: str, with_id: bool) -> dict:
    parameters = [_path("function_name", f"Only {ORCHESTRATOR}; another name is a 400.")]
    if with_id:
        parameters.append(_INSTANCE)
    parameters += [_query("timeout", "Seconds to wait for the end (capped by DURABLE_MAX_WAIT_SECONDS).",
                          {"type": "number", "minimum": 0}),
                   _query("pollingInterval", "Seconds between looks while waiting (default 1).",
                          {"type": "number", "minimum": 0}), *_URL_FORMS]
    return {"post": {
        "tags": _TAGS, "operationId": f"durableStart{name}{'WithId' if with_id else ''}",
        "summary": "Start a verification: the body is the phone number as a JSON string.",
        "description": "The Python client encodes the number twice (`\"\\\"+14255550123\\\"\"`); one level is "
                       "unwrapped. A custom instance id already running is a 409; a finished one is replaced.",
        "parameters": parameters,
        "requestBody": {"required": True, "content": json_content({"type": "string", "examples": ["+14255550123"]})},
        "responses": {
            "200": {"description": "With `timeout`: it finished in time; its status.", "content": _STATUS},
            "202": {"description": "Started; the management URLs.", "content": json_content(ref("DurableCheckStatus")),
                    "headers": {"Location": _HEADER, "Retry-After": _HEADER}},
            "400": _error("No phone number, not a valid one, not JSON, another function, or a bad instance id; "
                          "`ExceptionMessage` says which."),
            "409": _error("An instance with this id is running."),
        },
    }}


def _management(name: str) -> dict:
    instance = [_INSTANCE, *_URL_FORMS]
    return {
        "/instances/{instance_id}": {
            "get": {
                "tags": _TAGS, "operationId": f"durableStatus{name}", "summary": "An instance's status.",
                "parameters": [*instance, _query("showHistory", "Add historyEvents.", _FLAG),
                               _query("showHistoryOutput", "Add inputs and results to historyEvents.", _FLAG),
                               _query("showInput", "Include the input (default true).", _FLAG)],
                "responses": {"200": {"description": "Final.", "content": _STATUS},
                              "202": {"description": "Running.", "content": _STATUS,
                                      "headers": {"Location": _HEADER, "Retry-After": _HEADER}},
                              **errors(404)},
            },
            "delete": {
                "tags": _TAGS, "operationId": f"durablePurge{name}",
                "summary": "Purge an instance: its record, history and index entries.", "parameters": instance,
                "responses": {"200": {"description": "Deleted.", "content": json_content(ref("PurgeResult"))},
                              **errors(404)},
            },
        },
        "/instances/{instance_id}/raiseEvent/{event_name}": {"post": {
            "tags": _TAGS, "operationId": f"durableRaiseEvent{name}",
            "summary": f"Answer with the code: {EVENT}, the value a number, string or JSON-encoded string.",
            "description": "Compared numerically, as the sample does: 42 matches 0042. A value that is not a "
                           "whole number of at most the code's digits is a 400 and costs no attempt.",
            "parameters": [_INSTANCE, _path("event_name", f"Only {EVENT}."), *_URL_FORMS],
            "requestBody": {"required": True, "content": json_content(
                {"oneOf": [{"type": "integer"}, {"type": "string"}], "examples": [2168]})},
            "responses": {"202": {"description": "Taken; read the status for the outcome."},
                          **errors(404, 410)},
        }},
        "/instances/{instance_id}/terminate": {"post": {
            "tags": _TAGS, "operationId": f"durableTerminate{name}",
            "summary": "Terminate: the verification becomes canceled (runtimeStatus Terminated).",
            "parameters": [*instance, _query("reason", "Why; the output of the terminated instance.")],
            "responses": {"202": {"description": "Terminated."}, **errors(404, 410)},
        }},
        "/instances/": {
            "get": {
                "tags": _TAGS, "operationId": f"durableList{name}",
                "summary": "Instances in creation order, paged with x-ms-continuation-token.",
                "parameters": [*_FILTERS, _query("instanceIdPrefix", "Ids starting with this."),
                               _query("top", "Page size, 1 to 1000 (default 100).",
                                      {"type": "integer", "minimum": 1, "maximum": 1000}),
                               _query("showInput", "Include inputs (default true).", _FLAG),
                               {"name": "x-ms-continuation-token", "in": "header", "required": False,
                                "schema": {"type": "string"}, "description": "From the previous page."},
                               *_URL_FORMS],
                "responses": {"200": {"description": "A page; it may hold fewer than `top`.",
                                      "content": json_content({"type": "array", "items": ref("DurableStatus")}),
                                      "headers": {"x-ms-continuation-token": {
                                          "schema": {"type": "string"},
                                          "description": "Present when more may follow."}}},
                              **errors(400)},
            },
            "delete": {
                "tags": _TAGS, "operationId": f"durablePurgeMany{name}",
                "summary": "Purge every instance created in a range (createdTimeFrom is required).",
                "parameters": [*_FILTERS, *_URL_FORMS],
                "responses": {"200": {"description": "Deleted.", "content": json_content(ref("PurgeResult"))},
                              **errors(400, 404)},
            },
        },
    }


OPENAPI_PATHS: dict = {}
for _prefix in START_PREFIXES:
    OPENAPI_PATHS[f"{_prefix}/orchestrators/{{function_name}}"] = _start(_NAMES[_prefix], False)
    OPENAPI_PATHS[f"{_prefix}/orchestrators/{{function_name}}/{{instance_id}}"] = _start(_NAMES[_prefix], True)
for _prefix in MANAGEMENT_PREFIXES:
    for _rule, _item in _management(_NAMES[_prefix]).items():
        OPENAPI_PATHS[_prefix + _rule] = _item
