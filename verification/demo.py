"""The demo page: a person verifies a phone number in the browser, through small server-side routes."""

from __future__ import annotations

import re
import time

import phonenumbers
from flask import Blueprint, current_app, redirect, render_template, url_for

from verification import openapi, phone as phones
from verification.api import json_object, respond, service
from verification.errors import NotFound
from verification.model import SEND_STATUSES, STATUSES, Verification, iso
from verification.ratelimits import caller

# No url_prefix: the blueprint also owns `/`, which redirects to the page.
bp = Blueprint("demo", __name__, template_folder="templates", static_folder="static",
               static_url_path="/demo/static")

# The page loads only its own files, so a strict policy costs nothing and blocks injected scripts.
_PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
                "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def masked_number(e164: str) -> str:
    """`+14155550100` -> `+1 415 ***** 00`: the international format, the middle digits hidden."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return phones.mask(e164)
    formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    country, _, national = formatted.partition(" ")
    groups = [group for group in re.split(r"[^0-9]+", national) if group]
    digits = "".join(groups)
    # Show the first group (an area or mobile prefix) only if at least three digits stay hidden.
    head = groups[0] if len(groups) > 1 and len(groups[0]) <= len(digits) - 5 else digits[:max(len(digits) - 5, 0)]
    hidden = len(digits) - len(head) - 2
    return " ".join(part for part in (country, head, "*" * hidden, digits[-2:]) if part)


def view(v: Verification, **extra) -> dict:
    """What the page needs, and never the full number: these routes carry no API key."""
    body = {
        "id": v.id,
        "status": v.status,
        "phone": masked_number(v.phone),
        "updatedAt": iso(v.updated_ms),
        "expiresAt": iso(v.expires_ms),
        "serverTime": iso(int(time.time() * 1000)),
        "attemptsRemaining": v.attempts_remaining,
        "maxAttempts": v.max_attempts,
        "codeLength": v.code_length,
        "sendStatus": v.send_status,
        "failure": {"reason": v.reason, "twilioErrorCode": v.error_code} if v.status == "failed" else None,
    }
    body.update(extra)
    return body


def _known_id(verification_id: str) -> str:
    if not _ID.fullmatch(verification_id):
        raise NotFound(f"No verification {verification_id[:64]}.")
    return verification_id


@bp.get("/")
def root():
    return redirect(url_for("demo.page"))


@bp.get("/demo")
def page():
    settings = current_app.extensions["verification.settings"]
    response = current_app.make_response(render_template("demo.html", console=settings.sms_backend == "console"))
    response.headers.setdefault("Content-Security-Policy", _PAGE_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/demo/api/verifications")
def start():
    body = json_object({"phone"}, {"phone"})
    verification = service().start(body["phone"], caller=caller())
    return respond(view(verification), 202, Location=url_for("demo.read", verification_id=verification.id))


@bp.get("/demo/api/verifications/<verification_id>")
def read(verification_id: str):
    return respond(view(service().get(_known_id(verification_id))))


@bp.post("/demo/api/verifications/<verification_id>/check")
def check(verification_id: str):
    body = json_object({"code"}, {"code"})
    verification, approved = service().check(_known_id(verification_id), body["code"], channel="demo",
                                             caller=caller())
    return respond(view(verification, approved=approved))


@bp.post("/demo/api/verifications/<verification_id>/cancel")
def cancel(verification_id: str):
    json_object(set())
    return respond(view(service().cancel(_known_id(verification_id))))


def _body(properties: dict, required: list[str]) -> dict:
    return {"required": True, "content": openapi.json_content({
        "type": "object", "additionalProperties": False, "required": required, "properties": properties})}


def _answer(description: str) -> dict:
    return {"description": description, "content": openapi.json_content(openapi.ref("DemoVerification"))}


_ID_PARAM = [{"name": "verification_id", "in": "path", "required": True, "schema": {"type": "string"}}]
_PAGE_ONLY = {"x-uses-redis": False, "tags": ["demo"]}
_NOTE = "Registered only when DEMO_PAGE is on. No API key: the page calls these from the browser."

OPENAPI_COMPONENTS = {"schemas": {"DemoVerification": {
    "type": "object",
    "description": "A verification as the demo page sees it: the number masked, never in full.",
    "required": ["id", "status", "phone", "updatedAt", "expiresAt", "serverTime", "attemptsRemaining",
                 "maxAttempts", "codeLength", "sendStatus", "failure"],
    "properties": {
        "id": {"type": "string"},
        "status": {"type": "string", "enum": list(STATUSES)},
        "phone": {"type": "string", "description": "International format, middle digits masked.",
                  "examples": ["+1 415 ***** 00"]},
        "updatedAt": {"type": "string", "format": "date-time"},
        "expiresAt": {"type": "string", "format": "date-time"},
        "serverTime": {"type": "string", "format": "date-time",
                       "description": "The server's clock, so the countdown ignores a skewed device clock."},
        "attemptsRemaining": {"type": "integer", "minimum": 0},
        "maxAttempts": {"type": "integer", "minimum": 1},
        "codeLength": {"type": "integer", "minimum": 4, "maximum": 10},
        "sendStatus": {"type": "string", "enum": list(SEND_STATUSES)},
        "failure": {"type": ["object", "null"], "properties": {
            "reason": {"type": ["string", "null"]}, "twilioErrorCode": {"type": ["integer", "null"]}}},
        "approved": {"type": "boolean", "description": "Only in the answer to a check."},
    },
}}}

# Merged into the service's OpenAPI document by verification/openapi.py.
OPENAPI_PATHS = {
    "/": {"get": {
        **_PAGE_ONLY, "operationId": "demoRoot", "summary": "Redirect to the demo page",
        "description": "Registered only when DEMO_PAGE is on.",
        "responses": {"302": {"description": "To /demo.",
                              "headers": {"Location": {"$ref": "#/components/headers/Location"}}}},
    }},
    "/demo": {"get": {
        **_PAGE_ONLY, "operationId": "demoPage", "summary": "The demo page: verify a phone number in the browser",
        "description": "Registered only when DEMO_PAGE is on.",
        "responses": {"200": {"description": "The page.", "content": {"text/html": {"schema": {"type": "string"}}}}},
    }},
    "/demo/api/verifications": {"post": {
        "tags": ["demo"], "operationId": "demoStart", "summary": "Start a verification for the demo page",
        "description": _NOTE,
        "requestBody": _body({"phone": {"type": "string", "examples": ["+14155550100"]}}, ["phone"]),
        "responses": {"202": _answer("Started; the SMS is queued."), **openapi.errors(400, 429)},
    }},
    "/demo/api/verifications/{verification_id}": {"parameters": _ID_PARAM, "get": {
        "tags": ["demo"], "operationId": "demoRead", "summary": "Read a verification (the page polls it)",
        "description": _NOTE, "responses": {"200": _answer("The verification."), **openapi.errors(404)},
    }},
    "/demo/api/verifications/{verification_id}/check": {"parameters": _ID_PARAM, "post": {
        "tags": ["demo"], "operationId": "demoCheck", "summary": "Check a code from the demo page",
        "description": _NOTE + " A malformed code is a 400 and costs no attempt.",
        "requestBody": _body({"code": {"type": "string", "pattern": "^[0-9]{4,10}$"}}, ["code"]),
        "responses": {"200": _answer("Checked: `approved` says whether the code was right."),
                      **openapi.errors(400, 404, 409, 429)},
    }},
    "/demo/api/verifications/{verification_id}/cancel": {"parameters": _ID_PARAM, "post": {
        "tags": ["demo"], "operationId": "demoCancel", "summary": "Cancel a verification from the demo page",
        "description": _NOTE,
        "requestBody": {"required": False, "content": openapi.json_content({"type": "object", "maxProperties": 0})},
        "responses": {"200": _answer("Canceled."), **openapi.errors(404, 409)},
    }},
}
