"""The native JSON API under /v1: start, read, check and cancel verifications."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import BadRequest

from verification import openapi
from verification.auth import require_api_key
from verification.errors import ApiError
from verification.model import Verification, iso
from verification.ratelimits import caller

bp = Blueprint("v1", __name__, url_prefix="/v1")
require_api_key(bp)


def service():
    """The app's VerificationService (web.create_app puts it there)."""
    return current_app.extensions["verification"]


def settings():
    """The app's Settings."""
    return current_app.extensions["verification.settings"]


def json_object(allowed: set[str], required: set[str] = frozenset()) -> dict:
    """The request body as a JSON object with only the named fields; an empty body is {}."""
    if not request.get_data(cache=True):
        body = {}
    else:
        try:
            body = request.get_json(force=True)
        except (BadRequest, RecursionError):
            # json.loads gives up on deep nesting ("[[[[...") with RecursionError, not ValueError.
            raise ApiError("The body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError("The body must be a JSON object.", code="invalid_json")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(f"Unknown field(s): {', '.join(unknown)}.", code="unknown_field", fields=unknown)
    missing = sorted(required - set(body))
    if missing:
        raise ApiError(f"Missing field(s): {', '.join(missing)}.", code="missing_field", fields=missing)
    return body


def resource(v: Verification, **extra) -> dict:
    base = f"/v1/verifications/{v.id}"
    body = {
        "id": v.id,
        "status": v.status,
        "phone": v.phone,
        "createdAt": iso(v.created_ms),
        "updatedAt": iso(v.updated_ms),
        "expiresAt": iso(v.expires_ms),
        "attemptsRemaining": v.attempts_remaining,
        "sendStatus": v.send_status,
        "deliveryStatus": v.delivery_status,
        "failure": {"reason": v.reason, "twilioErrorCode": v.error_code} if v.status == "failed" else None,
        "links": {"self": base, "check": f"{base}/check", "cancel": f"{base}/cancel"},
    }
    body.update(extra)
    return body


def respond(body: dict, status: int = 200, **headers):
    response = jsonify(body)
    response.status_code = status
    # A verification resource is about one person's number: no cache may keep it.
    response.headers["Cache-Control"] = "no-store"
    response.headers.update(headers)
    return response


@bp.post("/verifications")
def start():
    body = json_object({"phone"}, {"phone"})
    verification = service().start(body["phone"], caller=caller())
    return respond(resource(verification), 202, Location=f"/v1/verifications/{verification.id}")


@bp.get("/verifications/<verification_id>")
def read(verification_id: str):
    return respond(resource(service().get(verification_id)))


@bp.post("/verifications/<verification_id>/check")
def check(verification_id: str):
    body = json_object({"code"}, {"code"})
    verification, approved = service().check(verification_id, body["code"], caller=caller())
    return respond(resource(verification, approved=approved))


@bp.post("/verifications/<verification_id>/cancel")
def cancel(verification_id: str):
    json_object(set())
    return respond(resource(service().cancel(verification_id)))



# The OpenAPI description of these routes; verification/openapi.py adds the shared parts.
_NO_STORE = {"Cache-Control": {"description": "`no-store`: the resource is about one person's number.",
                               "schema": {"type": "string"}}}
_RESOURCE = {"description": "The verification.", "headers": _NO_STORE,
             "content": openapi.json_content(openapi.ref("Verification"))}
_ID = [{"name": "verification_id", "in": "path", "required": True, "schema": {"type": "string"},
        "description": "The id from the start response."}]


def _body(schema: dict, required: bool = True) -> dict:
    return {"required": required, "content": openapi.json_content({"type": "object", "additionalProperties": False,
                                                                    **schema})}


OPENAPI_PATHS = {
    "/v1/verifications": {
        "post": {
            "tags": ["verifications"],
            "operationId": "startVerification",
            "summary": "Start a verification: send a code by SMS",
            "description": "A newer start for the same number cancels the pending one (superseded).",
            "requestBody": _body({"required": ["phone"], "properties": {"phone": {
                "type": "string", "minLength": 1, "maxLength": 64, "examples": ["+14155550100"],
                "description": "International format; stored in E.164. A number `phonenumbers` does not "
                               "find valid is a 400."}}}),
            "responses": {
                "202": {"description": "Started; the SMS is queued.",
                        "headers": {**_NO_STORE, "Location": {"$ref": "#/components/headers/Location"}},
                        "content": openapi.json_content(openapi.ref("Verification"))},
                **openapi.errors(400, 429),
            },
        },
    },
    "/v1/verifications/{verification_id}": {
        "parameters": _ID,
        "get": {
            "tags": ["verifications"],
            "operationId": "getVerification",
            "summary": "Read a verification",
            "responses": {"200": _RESOURCE, **openapi.errors(404)},
        },
    },
    "/v1/verifications/{verification_id}/check": {
        "parameters": _ID,
        "post": {
            "tags": ["verifications"],
            "operationId": "checkVerification",
            "summary": "Check a code",
            "description": "A wrong code spends an attempt; a malformed one (not 4 to 10 ASCII digits) is a "
                           "400 and costs none.",
            "requestBody": _body({"required": ["code"], "properties": {"code": {
                "type": "string", "pattern": "^[0-9]{4,10}$", "examples": ["0042"]}}}),
            "responses": {
                "200": {"description": "Checked: `approved` says whether the code was right.",
                        "headers": _NO_STORE, "content": openapi.json_content(openapi.ref("CheckResult"))},
                **openapi.errors(400, 404, 409, 429),
            },
        },
    },
    "/v1/verifications/{verification_id}/cancel": {
        "parameters": _ID,
        "post": {
            "tags": ["verifications"],
            "operationId": "cancelVerification",
            "summary": "Cancel a pending verification",
            "requestBody": _body({"maxProperties": 0}, required=False),
            "responses": {"200": _RESOURCE, **openapi.errors(400, 404, 409)},
        },
    },
}
