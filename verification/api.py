"""The native JSON API under /v1: start, read, check and cancel verifications."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request, url_for
from werkzeug.exceptions import BadRequest

from verification.auth import require_api_key
from verification.errors import ApiError
from verification.model import Verification, iso

bp = Blueprint("v1", __name__, url_prefix="/v1")
require_api_key(bp)


def service():
    return current_app.extensions["verification"]


def json_object(allowed: set[str], required: set[str] = frozenset()) -> dict:
    """The request body as a JSON object with only the named fields; an empty body is {}."""
    if not request.get_data(cache=True):
        body = {}
    else:
        try:
            body = request.get_json(force=True)
        except BadRequest:
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
    verification = service().start(body["phone"])
    return respond(resource(verification), 202, Location=f"/v1/verifications/{verification.id}")


@bp.get("/verifications/<verification_id>")
def read(verification_id: str):
    return respond(resource(service().get(verification_id)))


@bp.post("/verifications/<verification_id>/check")
def check(verification_id: str):
    body = json_object({"code"}, {"code"})
    verification, approved = service().check(verification_id, body["code"])
    return respond(resource(verification, approved=approved))


@bp.post("/verifications/<verification_id>/cancel")
def cancel(verification_id: str):
    json_object(set())
    return respond(resource(service().cancel(verification_id)))
