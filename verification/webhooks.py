"""Twilio's webhooks, signed by Twilio: SMS replies that check a code, and delivery status callbacks."""

from __future__ import annotations

import contextlib
import logging
import time
from urllib.parse import quote, urlsplit

import redis
from flask import Blueprint, Response, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from verification import keys, replies
from verification.api import service as _service, settings as _settings
from verification.challenge import STATUS_CALLBACK_PATH
from verification.errors import ApiError
from verification.phone import mask

log = logging.getLogger(__name__)

bp = Blueprint("twilio", __name__)
# Twilio cannot present an API key; its signature of each request stands in for one.
bp.api_key_forms = ()

INBOUND_PATH = "/twilio/sms"
# Seconds a repeated delivery waits for the first one's reply: well inside Twilio's 15 s.
INBOUND_WAIT_SECONDS = 5.0
# What a MessageSid's key holds while its first delivery is being answered.
_ANSWERING = "answering"
# Recorded on the verification; the others (queued, sending, accepted...) are acknowledged and dropped.
DELIVERY_STATUSES = frozenset({"sent", "delivered", "undelivered", "failed"})


@bp.before_request
def _verify_signature():
    """No view runs, so nothing changes, unless Twilio signed this very request."""
    settings = _settings()
    signature = request.headers.get("X-Twilio-Signature", "")
    if not settings.TWILIO_AUTH_TOKEN:
        # Nothing can be verified, and an unsigned webhook would let anyone guess codes.
        problem = "TWILIO_AUTH_TOKEN is not set"
    elif not signature:
        problem = "no signature"
    elif not RequestValidator(settings.TWILIO_AUTH_TOKEN).validate(
            public_url(settings.PUBLIC_BASE_URL), request.form, signature):
        problem = "wrong signature"
    else:
        return None
    log.warning("Twilio webhook refused: %s", problem)
    raise ApiError("The request does not carry a valid X-Twilio-Signature.", code="invalid_signature",
                   http_status=403)


def public_url(public_base_url: str) -> str:
    """The URL Twilio called and signed: the public base (or the request's own scheme and host, as
    ProxyFix corrected them), then the path and query exactly as they arrived, never re-encoded."""
    environ = request.environ
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        raw = _unwsgi(raw)
        if not raw.startswith("/"):
            # An absolute-form request target (`POST https://host/path`): keep its path and query.
            parts = urlsplit(raw)
            raw = parts.path + (f"?{parts.query}" if parts.query else "")
    else:
        raw = quote(_unwsgi(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")), safe="/%:@!$&'()*+,;=~")
        if environ.get("QUERY_STRING"):
            raw += "?" + _unwsgi(environ["QUERY_STRING"])
    origin = public_base_url.rstrip("/") if public_base_url else f"{request.scheme}://{request.host}"
    return origin + raw


def _unwsgi(value: str) -> str:
    # WSGI hands over raw bytes as latin-1 text; Twilio signed the UTF-8 text.
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


@bp.post(INBOUND_PATH)
def inbound_sms():
    form = request.form
    message_id = form.get("MessageSid") or request.headers.get("I-Twilio-Idempotency-Token")
    if not message_id:
        raise ApiError("MessageSid is required.", code="missing_field", fields=["MessageSid"])
    service = _service()
    connection = service.store.redis
    key = keys.inbound(message_id)
    ttl = _settings().TWILIO_INBOUND_DEDUP_SECONDS
    earlier = _claim(connection, key, ttl)
    if earlier is not None:
        return _twiml(earlier)
    sender = form.get("From", "")
    try:
        found = replies.find(service, sender, form.get("Body", ""))
    except BaseException:
        # Nothing was counted yet, so a retry of this message may try afresh.
        with contextlib.suppress(redis.RedisError):
            connection.delete(key)
        raise
    # Should the check fail midway it may still have counted: the key then stays `answering`, and
    # retries get 503 until it expires rather than a second count.
    reply = found if isinstance(found, replies.Reply) else replies.check(service, found)
    twiml = _messaging_response(reply.text)
    connection.set(key, twiml, ex=ttl)
    log.info("SMS reply from %s: %s", mask(sender), reply.kind, extra={"verification_id": reply.verification_id})
    return _twiml(twiml)


def _claim(connection: redis.Redis, key: str, ttl: int) -> str | None:
    """None when this delivery is the first and answers; else the reply the first one gave.

    SET NX decides who answers, so two deliveries of one message arriving together count once.
    """
    deadline = time.monotonic() + INBOUND_WAIT_SECONDS
    while not connection.set(key, _ANSWERING, nx=True, ex=ttl):
        value = connection.get(key)
        if value is not None and value != _ANSWERING:
            return value
        if time.monotonic() >= deadline:
            raise ApiError("An earlier delivery of this message is still being answered; try again shortly.",
                           code="in_progress", http_status=503, headers={"Retry-After": "2"})
        time.sleep(0.05)
    return None


def _messaging_response(text: str) -> str:
    response = MessagingResponse()
    response.message(text)
    return str(response)


def _twiml(twiml: str) -> Response:
    return Response(twiml, mimetype="text/xml", headers={"Cache-Control": "no-store"})


@bp.post(STATUS_CALLBACK_PATH)
def status_callback():
    verification_id = request.args.get("v", "")
    status = request.form.get("MessageStatus", "")
    missing = [name for name, value in (("v", verification_id), ("MessageStatus", status)) if not value]
    if missing:
        raise ApiError(f"Missing field(s): {', '.join(missing)}.", code="missing_field", fields=missing)
    if status in DELIVERY_STATUSES:
        error = request.form.get("ErrorCode", "")
        outcome = _service().store.record_delivery(
            verification_id, status, request.form.get("MessageSid", ""),
            error if error.isascii() and error.isdigit() else "")
        log.info("delivery status %s: %s", status, outcome, extra={"verification_id": verification_id})
    return Response(status=204)


_FORM = "application/x-www-form-urlencoded"
_SIGNED = {"tags": ["twilio"], "security": [{"twilioSignature": []}]}
_REFUSED = {
    "description": "No valid `X-Twilio-Signature` (or no `TWILIO_AUTH_TOKEN` set): nothing changed.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}

OPENAPI_COMPONENTS = {
    "securitySchemes": {
        "twilioSignature": {
            "type": "apiKey", "in": "header", "name": "X-Twilio-Signature",
            "description": "Twilio's signature: HMAC-SHA1, keyed with TWILIO_AUTH_TOKEN, of the public URL "
                           "(PUBLIC_BASE_URL + path and query) followed by the sorted form fields.",
        },
    },
    "schemas": {
        "TwilioInboundSms": {
            "type": "object",
            "required": ["MessageSid", "From"],
            "properties": {
                "MessageSid": {"type": "string", "description": "Deduplicates Twilio's retries."},
                "AccountSid": {"type": "string"},
                "From": {"type": "string", "description": "The sender, E.164; finds the verification."},
                "To": {"type": "string"},
                "Body": {"type": "string", "description": "The first group of 4-10 ASCII digits is the code."},
            },
            "additionalProperties": {"type": "string"},
        },
        "TwilioStatusCallback": {
            "type": "object",
            "required": ["MessageSid", "MessageStatus"],
            "properties": {
                "MessageSid": {"type": "string"},
                "MessageStatus": {"type": "string", "description": "sent, delivered, undelivered and failed are "
                                                                  "recorded; others are acknowledged."},
                "ErrorCode": {"type": "string"},
            },
            "additionalProperties": {"type": "string"},
        },
    },
}

OPENAPI_PATHS = {
    INBOUND_PATH: {
        "post": {
            **_SIGNED,
            "operationId": "twilioInboundSms",
            "summary": "An SMS reply, posted by Twilio: checks the code in it and answers by SMS",
            "description": "Set as the Messaging webhook of the Twilio number. Runs the same atomic check as "
                           "`POST /v1/verifications/{id}/check` on the newest verification for `From`. A "
                           "repeated `MessageSid` (or `I-Twilio-Idempotency-Token`) counts once and gets the "
                           "same reply. A body without 4-10 digits spends no attempt.",
            "parameters": [{"name": "I-Twilio-Idempotency-Token", "in": "header", "required": False,
                            "schema": {"type": "string"}, "description": "Used when there is no MessageSid."}],
            "requestBody": {"required": True,
                            "content": {_FORM: {"schema": {"$ref": "#/components/schemas/TwilioInboundSms"}}}},
            "responses": {
                "200": {"description": "TwiML with the reply SMS; it never contains the code.",
                        "content": {"text/xml": {"schema": {"type": "string"}}}},
                "403": _REFUSED,
                "503": {"description": "Redis is unreachable, or an earlier delivery of the same message is "
                                       "still being answered; try again shortly.",
                        "headers": {"Retry-After": {"$ref": "#/components/headers/Retry-After"}},
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        },
    },
    STATUS_CALLBACK_PATH: {
        "post": {
            **_SIGNED,
            "operationId": "twilioStatusCallback",
            "summary": "Delivery status of the challenge SMS, posted by Twilio",
            "description": "The worker passes this URL as `StatusCallback` when PUBLIC_BASE_URL is set. A late "
                           "`sent` never replaces `delivered`, `undelivered` or `failed`.",
            "parameters": [{"name": "v", "in": "query", "required": True, "schema": {"type": "string"},
                            "description": "The verification id."}],
            "requestBody": {"required": True,
                            "content": {_FORM: {"schema": {"$ref": "#/components/schemas/TwilioStatusCallback"}}}},
            "responses": {"204": {"description": "Recorded (or acknowledged)."}, "403": _REFUSED},
        },
    },
}
