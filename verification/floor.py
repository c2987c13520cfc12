"""The benchmark's floor: one Redis round trip and a JSON answer, served only with BENCH_FLOOR_ROUTE=1."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from verification import keys

bp = Blueprint("bench_floor", __name__)


@bp.post("/bench/floor")
def floor():
    # What every API request does at the least: read a small JSON body, one Redis command, answer JSON.
    # Nothing of the service's own: no API key, no validation, no Lua. `python -m bench` compares to it.
    body = request.get_json(silent=True) or {}
    value = current_app.extensions["verification"].store.redis.hgetall(keys.BENCH_FLOOR)
    return jsonify(floor=value, echo=sorted(body))


# Listed only in an app that serves the route, i.e. one started for the benchmark.
OPENAPI_PATHS = {
    "/bench/floor": {
        "post": {
            "tags": ["benchmark"],
            "operationId": "benchFloor",
            "summary": "Benchmark only: one Redis round trip and a JSON answer",
            "description": "Registered only when BENCH_FLOOR_ROUTE=1, for `python -m bench`; never in production.",
            "requestBody": {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {"200": {"description": "A small JSON object.",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}},
        }
    },
}
