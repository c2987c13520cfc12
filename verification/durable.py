"""The Durable Functions HTTP API over our verifications: the sample's orchestration E4_SmsPhoneVerification."""

from __future__ import annotations

import contextlib
import time
from urllib.parse import quote, urlencode

from flask import Blueprint, Response, request

from verification import jsontext
from verification.api import respond, service, settings
from verification.auth import presented_key, require_api_key
# Read by verification/openapi.py from the module that holds the views.
from verification.durable_openapi import OPENAPI_COMPONENTS, OPENAPI_PATHS  # noqa: F401
from verification.durable_query import SCAN_BUDGET, filters, instances, top
from verification.durable_status import (EVENT, INSTANCE_ID, MANAGEMENT_PREFIXES, ORCHESTRATOR, START_PREFIXES,
                                         BadValue, decode_token, encode_token, event_code, flag, history_events,
                                         runtime_status, seconds, status_body)
from verification.errors import ApiError, Conflict, NotFound
from verification.model import Verification
from verification.ratelimits import caller
from verification.store import IdTaken

bp = Blueprint("durable", __name__)
require_api_key(bp, allow_url_forms=True)


class DurableError(ApiError):
    """Our error shape, plus the `ExceptionMessage` the Durable client raises from a 400 on start."""

    def body(self) -> dict:
        return {**super().body(), "Message": self.message, "ExceptionMessage": self.message}

    @classmethod
    def of(cls, error: ApiError, http_status: int | None = None) -> "DurableError":
        return cls(error.message, code=error.code, http_status=http_status or error.status,
                   headers=error.headers, **error.details)


def _on(prefixes, rule: str, **options):
    def register(view):
        for prefix in prefixes:
            bp.add_url_rule(prefix + rule, view_func=view, **options)
        return view
    return register


@_on(START_PREFIXES, "/orchestrators/<function_name>", methods=["POST"])
@_on(START_PREFIXES, "/orchestrators/<function_name>/<instance_id>", methods=["POST"])
def start(function_name: str, instance_id: str | None = None):
    if function_name.lower() != ORCHESTRATOR.lower():
        raise DurableError(f"The function '{function_name}' doesn't exist, is disabled, or is not an "
                           f"orchestrator function. This service runs {ORCHESTRATOR}.", code="unknown_function")
    if instance_id is not None and not INSTANCE_ID.fullmatch(instance_id):
        raise DurableError("An instance id is 1 to 100 characters from A-Z a-z 0-9 . _ : -.",
                           code="invalid_instance_id")
    timeout, interval = _wait_options()
    verification = _start(_phone_input(), instance_id)
    if timeout:
        verification = _wait(verification, timeout, interval)
        if verification.is_final:
            return respond(status_body(verification))
    links = check_status_links(verification.id)
    return respond(links, 202, Location=links["statusQueryGetUri"], **{"Retry-After": "10"})


@_on(MANAGEMENT_PREFIXES, "/instances/<instance_id>", methods=["GET"])
def status(instance_id: str):
    verification = _verification(instance_id)
    history = None
    if flag(request.args.get("showHistory"), False):
        history = history_events(verification, service().store.events(verification.id),
                                 show_output=flag(request.args.get("showHistoryOutput"), False))
    body = status_body(verification, show_input=flag(request.args.get("showInput"), True), history=history)
    if verification.is_final:
        return respond(body)
    return respond(body, 202, Location=_absolute(request.full_path.rstrip("?")), **{"Retry-After": "5"})


@_on(MANAGEMENT_PREFIXES, "/instances/<instance_id>/raiseEvent/<event_name>", methods=["POST"])
def raise_event(instance_id: str, event_name: str):
    if event_name.lower() != EVENT.lower():
        raise DurableError(f"{ORCHESTRATOR} waits for one event, {EVENT}, not '{event_name}'.",
                           code="unknown_event")
    value = _json_body()
    verification = _verification(instance_id)
    if verification.is_final:
        raise _gone(verification)
    try:
        code = event_code(value, verification.code_length)
    except BadValue as exc:
        raise DurableError(str(exc), code="invalid_code") from None
    with _as_durable_errors():
        service().check(verification.id, code, channel="durable", caller=caller())
    return _empty(202)


@_on(MANAGEMENT_PREFIXES, "/instances/<instance_id>/terminate", methods=["POST"])
def terminate(instance_id: str):
    _valid_id(instance_id)
    reason = request.args.get("reason", "").strip()[:200] or "terminated through the Durable Functions API"
    with _as_durable_errors():
        service().cancel(instance_id, reason=reason)
    return _empty(202)


@_on(MANAGEMENT_PREFIXES, "/instances/<instance_id>", methods=["DELETE"])
def purge(instance_id: str):
    _valid_id(instance_id)
    if not service().store.purge(instance_id):
        raise _not_found(instance_id)
    return respond({"instancesDeleted": 1})


@_on(MANAGEMENT_PREFIXES, "/instances/", methods=["GET"], strict_slashes=False)
def list_instances():
    low, high, statuses = _bad_request(filters, request.args, False)
    page_size = _bad_request(top, request.args)
    token = request.headers.get("x-ms-continuation-token", "").strip()
    after = _bad_request(decode_token, token) if token and token != "null" else None
    prefix = request.args.get("instanceIdPrefix", "")
    show_input = flag(request.args.get("showInput"), True)
    found, position, budget = [], None, SCAN_BUDGET
    for verification, position in instances(service(), low, high, after, statuses, prefix):
        budget -= 1
        if verification is not None:
            found.append(status_body(verification, show_input=show_input))
        if len(found) >= page_size or budget <= 0:
            break
    else:
        position = None
    headers = {"x-ms-continuation-token": encode_token(*position)} if position else {}
    return respond(found, **headers)


@_on(MANAGEMENT_PREFIXES, "/instances/", methods=["DELETE"], strict_slashes=False)
def purge_many():
    low, high, statuses = _bad_request(filters, request.args, True)
    store = service().store
    deleted, budget = 0, SCAN_BUDGET
    for verification, (created_ms, verification_id) in instances(service(), low, high, None, statuses, ""):
        # The creation time pins the record seen here: a newer one reusing the id is left alone.
        if verification is not None and store.purge(verification_id, created_ms):
            deleted += 1
        budget -= 1
        if budget <= 0:
            break  # bounded, like a listing page: a client purging more calls again
    if not deleted:
        raise DurableError("No instances matched.", code="not_found", http_status=404, instancesDeleted=0)
    return respond({"instancesDeleted": deleted})


def check_status_links(instance_id: str) -> dict:
    """The management URLs the sample's start answers with, absolute and carrying the caller's key."""
    s = settings()
    params = {"taskHub": s.DURABLE_TASK_HUB, "connection": s.DURABLE_CONNECTION}
    key = presented_key(allow_url_forms=True)
    if key:
        params["code"] = key
    query = urlencode(params, quote_via=quote)
    instance = _absolute(f"{MANAGEMENT_PREFIXES[0]}/instances/{instance_id}")
    return {
        "id": instance_id,
        "statusQueryGetUri": f"{instance}?{query}",
        "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{query}",
        "terminatePostUri": f"{instance}/terminate?reason={{text}}&{query}",
        "purgeHistoryDeleteUri": f"{instance}?{query}",
    }


def _absolute(path: str) -> str:
    base = settings().PUBLIC_BASE_URL or request.url_root
    return base.rstrip("/") + path


def _start(phone: str, instance_id: str | None) -> Verification:
    try:
        if instance_id:
            # Before any limit is counted: a start refused as a duplicate spends nothing.
            service().destination(phone)
            existing = _existing(instance_id)
            if existing is not None and not existing.is_final:
                raise _running(instance_id)
            if existing is not None:
                # As Durable does, a finished instance started again under its id is replaced.
                service().store.purge(instance_id, existing.created_ms)
        return service().start(phone, verification_id=instance_id, caller=caller())
    except IdTaken:
        raise _running(instance_id) from None  # another start took the id in the meantime
    except ApiError as exc:
        raise DurableError.of(exc) from None


def _running(instance_id: str) -> DurableError:
    return DurableError(f"An instance with ID '{instance_id}' is already running.",
                        code="instance_exists", http_status=409)


def _existing(instance_id: str) -> Verification | None:
    try:
        return service().get(instance_id)
    except NotFound:
        return None


def _wait_options() -> tuple[float, float]:
    """`?timeout=&pollingInterval=` in seconds; the wait is capped so no client holds a worker for long."""
    timeout = _bad_request(seconds, request.args, "timeout")
    if not timeout:
        return 0.0, 0.0
    timeout = min(timeout, settings().DURABLE_MAX_WAIT_SECONDS)
    interval = _bad_request(seconds, request.args, "pollingInterval") or 1.0
    return timeout, min(max(interval, 0.05), timeout)


def _wait(verification: Verification, timeout: float, interval: float) -> Verification:
    deadline = time.monotonic() + timeout
    while not verification.is_final:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(interval, left))
        verification = service().get(verification.id)
    return verification


def _json_body():
    raw = request.get_data(cache=True)
    if not raw.strip():
        return None
    try:
        return jsontext.loads(raw)
    except ValueError:
        raise DurableError("The body is not valid JSON.", code="invalid_json") from None


def _phone_input() -> str:
    """The orchestration's input: the number as a JSON string; the Python client encodes it twice."""
    value = _json_body()
    if isinstance(value, str):
        try:
            inner = jsontext.loads(value)
        except ValueError:
            inner = None
        if isinstance(inner, str):
            value = inner
    if value is None or value == "":
        raise DurableError("A phone number input is required.", code="invalid_phone")
    if not isinstance(value, str):
        raise DurableError('The input must be the phone number as a JSON string, e.g. "+14255550123".',
                           code="invalid_phone")
    return value


def _valid_id(instance_id: str) -> None:
    # An id we could never have made cannot exist; it never reaches a Redis key.
    if not INSTANCE_ID.fullmatch(instance_id):
        raise _not_found(instance_id)


def _verification(instance_id: str) -> Verification:
    _valid_id(instance_id)
    try:
        return service().get(instance_id)
    except NotFound:
        raise _not_found(instance_id) from None


def _not_found(instance_id: str) -> DurableError:
    return DurableError(f"No instance with ID '{instance_id}' found.", code="not_found", http_status=404)


@contextlib.contextmanager
def _as_durable_errors():
    """The service's errors in Durable's terms: a change to a finished instance is 410 Gone."""
    try:
        yield
    except Conflict as exc:
        raise _gone(exc.verification) from None
    except ApiError as exc:
        raise DurableError.of(exc) from None


def _gone(verification: Verification) -> DurableError:
    return DurableError(f"Instance '{verification.id}' is {runtime_status(verification)} "
                        f"({verification.status}); it can no longer change.",
                        code="gone", http_status=410, status=verification.status)


def _empty(status: int) -> Response:
    response = Response(status=status)
    # No body, so no type: the Durable client parses every body it gets as JSON.
    del response.headers["Content-Type"]
    return response


def _bad_request(parse, *args):
    try:
        return parse(*args)
    except BadValue as exc:
        raise DurableError(str(exc), code="invalid_parameter") from None
