"""The web app with parts of a check taken out, for `python -m bench.ablate`: `gunicorn bench.ablation:app`.

BENCH_ABLATE names the parts (PARTS), comma-separated. Each is replaced in the process that serves, as the
app is built, by nothing or by the least a check could do in its place. Never for production.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from http import HTTPStatus

from werkzeug.middleware.proxy_fix import ProxyFix

import web
from verification import api, auth, codes, errors, keys, metrics, ratelimits, store


def _replace(owner, name: str, value) -> None:
    # A part renamed in the app must fail here, not quietly leave the variant the same as the shipped one.
    if not hasattr(owner, name):
        raise AttributeError(f"{owner!r} has no {name}: bench/ablation.py is out of step with the app")
    setattr(owner, name, value)


def _no_log_line() -> None:
    logging.getLogger("verification.service").setLevel(logging.WARNING)


def _no_metrics() -> None:
    for name in ("checked", "finished", "approved_after", "rate_limited"):
        _replace(metrics, name, lambda *args, **kwargs: None)


# What the HMAC becomes without it: any code "matches" a record holding this (bench.ablate checks so).
MADE_UP_DIGEST = "0" * 32


def _no_hmac() -> None:
    _replace(codes, "digest", lambda secret, verification_id, code: MADE_UP_DIGEST)


def _counted(outcome, channel: str):
    store._count_check(outcome, channel)  # as Store.check does: the metrics are a part of their own
    return outcome


def _check_by_hgetall() -> None:
    # Every check a wrong one, from the record as it is: no compare, no attempt spent, no rate limit.
    def check(self, verification_id, code_hash, channel, limits=(), of_phone=""):
        return _counted(store.CheckOutcome("wrong", self.get(verification_id)), channel)

    _replace(store.Store, "check", check)


def _check_by_trivial_script() -> None:
    # The same through a script that does nothing else: what calling a script costs by itself.
    def check(self, verification_id, code_hash, channel, limits=(), of_phone=""):
        if "_hgetall_script" not in self.__dict__:  # registered once per Store, at its first check
            self._hgetall_script = self.redis.register_script("return redis.call('HGETALL', KEYS[1])")
        flat = self._hgetall_script(keys=[keys.state(verification_id)])
        return _counted(store.CheckOutcome("wrong", store._verification(verification_id, flat)), channel)

    _replace(store.Store, "check", check)


# Set on each answer served without Flask, so that bench.ablate can tell the variant did so.
WITHOUT_FLASK = "X-Bench-Without-Flask"
_CHECK_PATH = re.compile(r"/v1/verifications/([^/]+)/check\Z")
_after_build = []  # what a part does to the app once it is built


def _check_without_flask() -> None:
    _after_build.append(serve_checks_without_flask)


def serve_checks_without_flask(app) -> None:
    """Put a WSGI function in front of Flask that serves a check with a valid Bearer key and a body of one
    field, `code`: the same service call, resource, log line, metrics and error bodies, without Flask's
    request, routing, hooks and response. Anything else goes on to Flask, a body it read given back."""
    service = app.extensions["verification"]
    api_keys = app.extensions["verification.settings"].API_KEYS

    def wsgi(environ, start_response):
        path = _CHECK_PATH.match(environ.get("PATH_INFO", ""))
        if path is None or environ["REQUEST_METHOD"] != "POST":
            return with_flask(environ, start_response)
        length = environ.get("CONTENT_LENGTH")
        if not length:  # a chunked body, read to its end by Flask: left to it whole
            return with_flask(environ, start_response)
        scheme, _, key = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        key = key.strip()
        raw = environ["wsgi.input"].read(int(length))
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            body = None
        if scheme.lower() != "bearer" or not auth.is_valid(key, api_keys) or not isinstance(body, dict) \
                or set(body) != {"code"}:
            environ["wsgi.input"] = io.BytesIO(raw)
            return with_flask(environ, start_response)
        caller = ratelimits.Caller(ratelimits.client_network(environ.get("REMOTE_ADDR")),
                                   ratelimits.key_fingerprint(key))
        try:
            verification, approved = service.check(path.group(1), body["code"], caller=caller)
        except errors.ApiError as error:
            answer, status, headers = error.body(), error.status, list(error.headers.items())
        else:
            answer, status = api.resource(verification, approved=approved), 200
            headers = [("Cache-Control", "no-store")]
        return _answer(start_response, answer, status, *headers)

    if isinstance(app.wsgi_app, ProxyFix):  # inside it, so that REMOTE_ADDR is the client's, as Flask sees it
        with_flask, app.wsgi_app.app = app.wsgi_app.app, wsgi
    else:
        with_flask, app.wsgi_app = app.wsgi_app, wsgi


def floor_without_flask(app):
    """The floor's work (read the JSON body, one `HGETALL`, answer JSON) as a WSGI function of its own: what
    Flask adds to a request is the floor's cost less this one's (`bench.instructions`)."""
    connection = app.extensions["verification"].store.redis

    def wsgi(environ, start_response):
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        body = json.loads(raw) if raw else {}
        return _answer(start_response, {"floor": connection.hgetall(keys.BENCH_FLOOR), "echo": sorted(body)}, 200)

    return wsgi


def _answer(start_response, answer: dict, status: int, *headers) -> list[bytes]:
    out = json.dumps(answer, separators=(",", ":")).encode() + b"\n"  # as Flask's jsonify writes it
    start_response(f"{status} {HTTPStatus(status).phrase}", [
        ("Content-Type", "application/json"), ("Content-Length", str(len(out))), (WITHOUT_FLASK, "1"), *headers])
    return [out]


PARTS = {
    "log": _no_log_line,  # the service's log line of each check (gunicorn's access line stays)
    "metrics": _no_metrics,  # the Prometheus counters
    "hmac": _no_hmac,  # the code's HMAC
    "script": _check_by_trivial_script,  # check.lua: a script that only runs HGETALL instead
    "hgetall": _check_by_hgetall,  # check.lua: HGETALL instead
    "flask": _check_without_flask,  # Flask: the check served by a WSGI function in front of it
}


def parts(value: str) -> list[str]:
    named = [part.strip() for part in value.split(",") if part.strip()]
    unknown = sorted(set(named) - set(PARTS))
    if unknown:
        raise ValueError(f"BENCH_ABLATE: unknown part(s) {', '.join(unknown)}; known: {', '.join(PARTS)}")
    return named


def __getattr__(name: str):
    # Built on first use in each gunicorn worker, as web.app is.
    if name == "app":
        for part in parts(os.environ.get("BENCH_ABLATE", "")):
            PARTS[part]()
        app = web.create_app()
        for change in _after_build:
            change(app)
        globals()["app"] = app
        return app
    raise AttributeError(name)
