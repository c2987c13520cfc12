"""The Flask application factory: `gunicorn web:app` or `flask --app web run`."""

from __future__ import annotations

import dataclasses

import redis
from flask import Flask, jsonify

from verification import api, errors
from verification.config import Settings
from verification.dispatch import CeleryDispatcher
from verification.service import VerificationService
from verification.store import Store


def create_app(test_config: dict | None = None) -> Flask:
    """Defaults, then the environment, then `test_config` (settings by name, plus CELERY_APP)."""
    test_config = dict(test_config or {})
    celery_app = test_config.pop("CELERY_APP", None)
    settings = Settings.from_env(**test_config)

    app = Flask(__name__)
    app.config.update(dataclasses.asdict(settings))
    app.config["MAX_CONTENT_LENGTH"] = settings.MAX_CONTENT_LENGTH
    app.json.sort_keys = False

    connection = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2,
                                      health_check_interval=30, decode_responses=True)
    store = Store(connection, settings.VERIFICATION_RETENTION_SECONDS)
    if celery_app is None:
        import tasks

        celery_app = tasks.app
    app.extensions["verification"] = VerificationService(store, settings, CeleryDispatcher(celery_app))
    app.extensions["verification.settings"] = settings

    errors.register(app)
    app.register_blueprint(api.bp)
    # Further blueprints: Durable Functions API, Twilio webhooks, demo page, operations.

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz():
        try:
            connection.ping()
            store.load_scripts()
        except redis.RedisError:
            return jsonify(status="unavailable", redis=False), 503, {"Retry-After": "5"}
        return jsonify(status="ready", redis=True)

    return app


def __getattr__(name: str):
    # `gunicorn web:app` builds the app on first use, not when a test imports this module.
    if name == "app":
        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(name)
