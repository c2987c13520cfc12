"""API errors and the JSON shape every error takes: {"error": {"code", "message"}}."""

from __future__ import annotations

import logging

import kombu.exceptions
import redis
from flask import jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    status = 400
    code = "invalid_request"

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None,
                 headers: dict | None = None, **details):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.status = http_status or self.status
        self.headers = headers or {}
        self.details = details

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


def error_response(error: ApiError):
    response = jsonify(error.body())
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def register(app) -> None:
    """Every error becomes JSON: ours, Werkzeug's (404, 405, 413...), Redis outages, and bugs."""

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError):
        return error_response(error)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        code = (error.name or "error").lower().replace(" ", "_")
        response = error_response(ApiError(error.description or error.name, code=code, http_status=error.code))
        if error.code == 405 and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(redis.RedisError)
    def _redis_down(error: redis.RedisError):
        log.warning("Redis unavailable: %s", type(error).__name__)
        return error_response(ApiError("The verification store is unavailable; try again shortly.",
                                       code="unavailable", http_status=503, headers={"Retry-After": "5"}))

    @app.errorhandler(kombu.exceptions.OperationalError)
    def _broker_down(error: kombu.exceptions.OperationalError):
        # The broker can be a Redis of its own (CELERY_BROKER_URL): its outage is a 503 too.
        log.warning("Celery broker unavailable: %s", type(error).__name__)
        return error_response(ApiError("The task queue is unavailable; try again shortly.",
                                       code="unavailable", http_status=503, headers={"Retry-After": "5"}))

    @app.errorhandler(Exception)
    def _bug(error: Exception):
        log.exception("unhandled error")
        return error_response(ApiError("Internal error.", code="internal_error", http_status=500))
