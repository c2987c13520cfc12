"""Liveness and readiness: /healthz (the process answers) and /readyz (Redis reachable, scripts loaded)."""

from __future__ import annotations

import redis
from flask import Blueprint, current_app, jsonify

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    store = current_app.extensions["verification"].store
    try:
        store.redis.ping()
        store.load_scripts()
    except redis.RedisError:
        return jsonify(status="unavailable", redis=False), 503, {"Retry-After": "5"}
    return jsonify(status="ready", redis=True)


def _status(*values: str) -> dict:
    return {"type": "object", "required": ["status"],
            "properties": {"status": {"type": "string", "enum": list(values)}, "redis": {"type": "boolean"}}}


OPENAPI_PATHS = {
    "/healthz": {
        "get": {
            "tags": ["operations"],
            "summary": "Liveness: the process answers",
            "description": "Touches nothing else, so an orchestrator restarts only a process that is stuck.",
            "operationId": "healthz",
            "x-uses-redis": False,
            "responses": {"200": {"description": "Alive.", "content": {"application/json": {"schema": _status("ok")}}}},
        }
    },
    "/readyz": {
        "get": {
            "tags": ["operations"],
            "summary": "Readiness: Redis reachable and the Lua scripts loaded",
            "operationId": "readyz",
            "x-uses-redis": False,  # documents its own 503, with its own body
            "responses": {
                "200": {"description": "Ready for traffic.",
                        "content": {"application/json": {"schema": _status("ready")}}},
                "503": {"description": "Redis is unreachable: take this instance out of rotation.",
                        "headers": {"Retry-After": {"$ref": "#/components/headers/Retry-After"}},
                        "content": {"application/json": {"schema": _status("unavailable")}}},
            },
        }
    },
}
