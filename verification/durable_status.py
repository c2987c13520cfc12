"""Verifications seen as Durable Functions orchestration instances: status, history, inputs, paging."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from datetime import datetime, timezone

from verification import jsontext
from verification.model import (APPROVED, CANCELED, EXPIRED, FAILED, MAX_ATTEMPTS_REACHED, PENDING,
                                Verification, ms_to_datetime)

ORCHESTRATOR = "E4_SmsPhoneVerification"
ACTIVITY = "E4_SendSmsChallenge"
EVENT = "SmsChallengeResponse"

# The management routes live under both: the extension's webhook path, and the client's `rpcBaseUrl` form.
MANAGEMENT_PREFIXES = ("/runtime/webhooks/durabletask", "/durabletask")
# Starts also come to the sample's own HttpStart URLs, with and without Azure Functions' `/api`.
START_PREFIXES = ("/api", "", *MANAGEMENT_PREFIXES)

# Every runtimeStatus the Durable API knows; we produce Running, Completed, Terminated and Failed.
RUNTIME_STATUSES = ("Running", "Completed", "ContinuedAsNew", "Failed", "Canceled", "Terminated", "Pending",
                    "Suspended")
_RUNTIME = {PENDING: "Running", APPROVED: "Completed", MAX_ATTEMPTS_REACHED: "Completed", EXPIRED: "Completed",
            CANCELED: "Terminated", FAILED: "Failed"}

# Custom instance ids: what is safe in a URL path segment and inside a Redis key's hash tag.
INSTANCE_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")


class BadValue(ValueError):
    """A query parameter, token or event value the Durable API cannot use."""


def runtime_status(v: Verification) -> str:
    return _RUNTIME[v.status]


def output(v: Verification):
    """What the sample's orchestrator returns: approved or not; a terminated or failed one says why."""
    if v.status == APPROVED:
        return True
    if v.status in (MAX_ATTEMPTS_REACHED, EXPIRED):
        return False
    if v.status in (CANCELED, FAILED):
        return v.reason or v.status
    return None


def when(ms: int) -> str:
    """Durable's time format, yyyy-MM-ddTHH:mm:ssZ."""
    return ms_to_datetime(ms).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_body(v: Verification, *, show_input: bool = True, history: list[dict] | None = None) -> dict:
    body = {
        "name": ORCHESTRATOR,
        "instanceId": v.id,
        "runtimeStatus": runtime_status(v),
        "input": v.phone if show_input else None,
        "output": output(v),
        "customStatus": {"status": v.status, "attemptsRemaining": v.attempts_remaining},
        "createdTime": when(v.created_ms),
        "lastUpdatedTime": when(v.updated_ms),
    }
    if history is not None:
        body["historyEvents"] = history
    return body


def history_events(v: Verification, events: list[dict], *, show_output: bool = False) -> list[dict]:
    """The stored events in Durable's shape. A code is never among them: the store never holds one."""
    history = [_history_event(v, event, show_output) for event in events]
    if v.is_final:
        completed = {"EventType": "ExecutionCompleted", "OrchestrationStatus": runtime_status(v),
                     "Timestamp": when(v.updated_ms)}
        if show_output:
            completed["Result"] = output(v)
        at = _finishing_event(v, events)
        if at is None:
            history.append(completed)
        else:
            completed["Timestamp"] = when(int(events[at].get("t", v.updated_ms)))
            history.insert(at + 1, completed)
    return history


def _history_event(v: Verification, event: dict, show_output: bool) -> dict:
    name, at = event.get("e"), when(int(event.get("t", 0)))
    if name == "started":
        entry = {"EventType": "ExecutionStarted", "FunctionName": ORCHESTRATOR, "Timestamp": at}
        if show_output:
            entry["Input"] = v.phone
        return entry
    if name == "sms_sent":
        # The sample's activity returns the code: its Result is the one field we never give.
        return {"EventType": "TaskCompleted", "FunctionName": ACTIVITY, "Timestamp": at}
    # A final event's reason is the record's (finish.lua); a retried send's is its own.
    final_reason = v.reason or ""
    if name in ("sms_retry", FAILED):
        reason = event.get("reason", final_reason if name == FAILED else "")
        return {"EventType": "TaskFailed", "FunctionName": ACTIVITY, "Reason": reason, "Timestamp": at}
    if name == "response":
        return {"EventType": "EventRaised", "Name": EVENT, "Timestamp": at, "Channel": event.get("via"),
                "CodeMatched": bool(event.get("ok"))}
    if name == EXPIRED:
        return {"EventType": "TimerFired", "FireAt": when(v.expires_ms), "Timestamp": at}
    if name == CANCELED:
        return {"EventType": "ExecutionTerminated", "Reason": event.get("reason", final_reason), "Timestamp": at}
    if name == "delivery":
        return {"EventType": "GenericEvent", "Name": "SmsDelivery", "Status": event.get("status"), "Timestamp": at}
    return {"EventType": "GenericEvent", "Name": str(name), "Timestamp": at}


def _finishing_event(v: Verification, events: list[dict]) -> int | None:
    """Where the verification became final, so ExecutionCompleted follows it even if more came later."""
    wanted = "response" if v.status in (APPROVED, MAX_ATTEMPTS_REACHED) else v.status
    for index in range(len(events) - 1, -1, -1):
        if events[index].get("e") == wanted:
            return index
    return None


def event_code(value, code_length: int) -> str:
    """The raised value as a code of the verification's length: numeric, as the sample's `int` compare.

    The value may be a JSON number (2168), a string ("0042"), or a string holding JSON ("\\"2168\\"", as the
    Python client sends it). Anything else raises BadValue, before any attempt is spent.
    """
    for _ in range(3):
        if not isinstance(value, str):
            break
        text = value.strip()
        if re.fullmatch(r"[0-9]{1,10}", text):
            value = int(text)
            break
        try:
            value = jsontext.loads(text)
        except ValueError:
            break
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadValue("The SmsChallengeResponse value must be the code as an integer, e.g. 2168.")
    if not 0 <= value < 10 ** code_length:
        raise BadValue(f"The SmsChallengeResponse value must be an integer from 0 to {10 ** code_length - 1}.")
    return f"{value:0{code_length}d}"


def flag(text: str | None, default: bool) -> bool:
    """A query boolean as .NET's bool.TryParse reads it: true/True/TRUE; anything else is the default."""
    if text is None:
        return default
    lowered = text.strip().lower()
    return {"true": True, "false": False}.get(lowered, default)


def seconds(args, name: str) -> float | None:
    """A query parameter in seconds, e.g. `timeout=30` or `pollingInterval=0.5`; None when absent."""
    text = args.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise BadValue(f"{name} must be a number of seconds.")
    return value


def parse_time(text: str, name: str) -> int:
    """An ISO 8601 time (the client sends 2026-01-01T00:00:00.000000Z) as ms; naive means UTC."""
    text = text.strip()
    # An unencoded `+00:00` in a query string arrives as ` 00:00`.
    for candidate in (text, text[:19] + text[19:].replace(" ", "+")):
        try:
            moment = datetime.fromisoformat(candidate)
            break
        except ValueError:
            continue
    else:
        raise BadValue(f"{name} must be an ISO 8601 time, e.g. 2026-01-01T00:00:00Z.")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def runtime_filter(text: str | None) -> frozenset[str] | None:
    """`runtimeStatus=Running,Completed` as canonical names; None when absent."""
    if not text:
        return None
    known = {name.lower(): name for name in RUNTIME_STATUSES}
    wanted = set()
    for item in text.split(","):
        if item.strip().lower() not in known:
            raise BadValue(f"Unknown runtimeStatus {item.strip()!r}; one of {', '.join(RUNTIME_STATUSES)}.")
        wanted.add(known[item.strip().lower()])
    return frozenset(wanted)


def encode_token(created_ms: int, verification_id: str) -> str:
    """An opaque continuation token: the position of the last instance returned."""
    raw = json.dumps([created_ms, verification_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_token(token: str) -> tuple[int, str]:
    try:
        created_ms, verification_id = jsontext.loads(base64.urlsafe_b64decode(token.encode()))
        if isinstance(created_ms, int) and not isinstance(created_ms, bool) and isinstance(verification_id, str):
            return created_ms, verification_id
    except (ValueError, TypeError, binascii.Error):
        pass
    raise BadValue("The x-ms-continuation-token header is not one this service gave.")
