"""The OpenAPI 3.1 document, assembled from every route module's `OPENAPI_PATHS`, and its /docs page.

Each module that defines routes (a blueprint's module, or any module holding a view function) documents
them in a module-level `OPENAPI_PATHS` dict: an OpenAPI "paths" fragment keyed by the path as OpenAPI
writes it (`/v1/verifications/{verification_id}`). It may also define `OPENAPI_COMPONENTS`, merged into
`components` (its own schemas, say). Shared pieces live here: `#/components/schemas/Error`,
`Verification`, `CheckResult`, and the responses `#/components/responses/<Name>` named in `ERRORS`.

So that no module has to repeat them, `build()` adds to every operation what the app does to all of them:
the blueprint's API-key security and `401`/`429` when `require_api_key` guards it, `400` and `413` when
it takes a body, and `503` (Redis unreachable) unless the operation says `"x-uses-redis": False`.
"""

from __future__ import annotations

import copy
import re
import sys
from importlib import metadata

from flask import Blueprint, current_app, jsonify

from verification import apidocs
from verification.model import SEND_STATUSES, STATUSES

bp = Blueprint("openapi", __name__, template_folder="templates")

TITLE = "SMS phone verification"


def _version() -> str:
    try:
        return metadata.version("sms-verification")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "0.0.0"


def _error_response(description: str, *headers: str) -> dict:
    response = {"description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if headers:
        response["headers"] = {name: {"$ref": f"#/components/headers/{name}"} for name in headers}
    return response


# Status code -> the name of the shared response in `components.responses`.
ERRORS = {
    400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 409: "Conflict", 410: "Gone",
    413: "PayloadTooLarge", 429: "TooManyRequests", 503: "Unavailable",
}


def errors(*statuses: int) -> dict:
    """`responses` entries that point at the shared error responses, e.g. `**errors(404, 409)`."""
    return {str(status): {"$ref": f"#/components/responses/{ERRORS[status]}"} for status in statuses}


def json_content(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


_TIME = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC, milliseconds."}

SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "description": "Stable and machine-readable, e.g. `invalid_phone`."},
                    "message": {"type": "string", "description": "For people."},
                },
                "description": "Some errors add details, e.g. `fields` or the current `status`.",
            }
        },
    },
    "Verification": {
        "type": "object",
        "required": ["id", "status", "phone", "createdAt", "updatedAt", "expiresAt", "attemptsRemaining",
                     "sendStatus", "deliveryStatus", "failure", "links"],
        "properties": {
            "id": {"type": "string", "description": "Opaque: 128 random bits as 22 characters of base64url "
                                                     "(`A-Z a-z 0-9 - _`), or a Durable start's own instance id."},
            "status": {"type": "string", "enum": list(STATUSES)},
            "phone": {"type": "string", "description": "E.164", "pattern": r"^\+[1-9][0-9]{1,14}$"},
            "createdAt": _TIME,
            "updatedAt": _TIME,
            "expiresAt": _TIME,
            "attemptsRemaining": {"type": "integer", "minimum": 0},
            "sendStatus": {"type": "string", "enum": list(SEND_STATUSES),
                           "description": "The send ledger: queued -> sending -> sent | failed."},
            "deliveryStatus": {"type": ["string", "null"], "description": "From Twilio's status callback."},
            "failure": {
                "oneOf": [
                    {"type": "null"},
                    {"type": "object", "required": ["reason"],
                     "properties": {"reason": {"type": ["string", "null"]},
                                    "twilioErrorCode": {"type": ["integer", "null"]}}},
                ],
                "description": "Why the SMS could not be sent, when `status` is `failed`.",
            },
            "links": {
                "type": "object",
                "required": ["self", "check", "cancel"],
                "properties": {name: {"type": "string", "format": "uri-reference"}
                               for name in ("self", "check", "cancel")},
            },
        },
    },
    "CheckResult": {
        "allOf": [
            ref("Verification"),
            {"type": "object", "required": ["approved"], "properties": {"approved": {"type": "boolean"}}},
        ],
    },
}

COMPONENTS = {
    "schemas": SCHEMAS,
    "headers": {
        "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}},
        "WWW-Authenticate": {"description": "The scheme to authenticate with.", "schema": {"type": "string"}},
        "Location": {"description": "Where the created resource is.", "schema": {"type": "string"}},
    },
    "responses": {
        "BadRequest": _error_response("The request is malformed: not JSON, unknown or missing fields, bad values."),
        "Unauthorized": _error_response("No valid API key.", "WWW-Authenticate"),
        "NotFound": _error_response("No such resource (or it is past its retention)."),
        "Conflict": _error_response("The verification is no longer pending; `error.status` names its status."),
        "Gone": _error_response("The resource is final and can no longer change."),
        "PayloadTooLarge": _error_response("The body exceeds MAX_CONTENT_LENGTH."),
        "TooManyRequests": _error_response("A rate limit refused the request.", "Retry-After"),
        "Unavailable": _error_response("Redis is unreachable; try again shortly.", "Retry-After"),
    },
    "securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <API key>`."},
        "query": {"type": "apiKey", "in": "query", "name": "code",
                  "description": "`?code=<API key>`, as Azure Functions URLs carry it (Durable routes only)."},
        "basic": {"type": "http", "scheme": "basic",
                  "description": "The API key as the user name, no password (Durable routes only)."},
    },
}

_DOC_ONLY = {"x-uses-redis": False, "tags": ["operations"]}

OPENAPI_PATHS = {
    "/openapi.json": {
        "get": {
            **_DOC_ONLY,
            "summary": "This API description (OpenAPI 3.1)",
            "operationId": "openapi",
            "responses": {"200": {"description": "The OpenAPI document.",
                                  "content": json_content({"type": "object"})}},
        }
    },
    "/docs": {
        "get": {
            **_DOC_ONLY,
            "summary": "This API description as a page to read",
            "operationId": "docs",
            "responses": {"200": {"description": "An HTML page.", "content": {"text/html": {"schema": {"type": "string"}}}}},
        }
    },
}

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def openapi_path(rule: str) -> str:
    """`/v1/verifications/<verification_id>` -> `/v1/verifications/{verification_id}`."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def route_modules(app) -> dict:
    """Every module that defines a route of `app`, each with the blueprint it belongs to (or None)."""
    modules = {}
    for blueprint in app.blueprints.values():
        modules.setdefault(blueprint.import_name, blueprint)
    for endpoint, view in app.view_functions.items():
        blueprint = app.blueprints.get(endpoint.rpartition(".")[0]) if "." in endpoint else None
        modules.setdefault(getattr(view, "__module__", None), blueprint)
    modules.pop(None, None)
    return modules


def build(app) -> dict:
    components = copy.deepcopy(COMPONENTS)
    paths: dict = {}
    for name, blueprint in route_modules(app).items():
        module = sys.modules.get(name)
        for schema_kind, entries in getattr(module, "OPENAPI_COMPONENTS", {}).items():
            components.setdefault(schema_kind, {}).update(copy.deepcopy(entries))
        for path, item in getattr(module, "OPENAPI_PATHS", {}).items():
            item = copy.deepcopy(item)
            for method, operation in item.items():
                if method in _METHODS:
                    _complete(operation, blueprint)
            paths.setdefault(path, {}).update(item)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": _version(),
            "description": "Send a code by SMS, wait for the person, decide. Every error is JSON: "
                           "`{\"error\": {\"code\": \"...\", \"message\": \"...\"}}`.",
        },
        "paths": dict(sorted(paths.items())),
        "components": components,
    }


def _complete(operation: dict, blueprint) -> None:
    responses = operation.setdefault("responses", {})
    forms = getattr(blueprint, "api_key_forms", ())
    if forms:
        operation.setdefault("security", [{form: []} for form in forms])
        for status in (401, 429):
            responses.setdefault(str(status), errors(status)[str(status)])
    if "requestBody" in operation:
        for status in (400, 413):
            responses.setdefault(str(status), errors(status)[str(status)])
    if operation.get("x-uses-redis", True):
        responses.setdefault("503", errors(503)["503"])


def document() -> dict:
    """The document for the current app, built once per app."""
    cached = current_app.extensions.get("openapi.document")
    if cached is None:
        cached = current_app.extensions["openapi.document"] = build(current_app)
    return cached


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(document())


@bp.get("/docs")
def docs():
    return apidocs.render(document())
