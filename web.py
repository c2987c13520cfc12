"""The Flask application factory: `gunicorn web:app` or `flask --app web run`."""

from __future__ import annotations

import redis
from flask import Flask
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.middleware.proxy_fix import ProxyFix

from verification import api, demo, durable, errors, health, logs, metrics, openapi, webhooks
from verification.config import ConfigError, Settings
from verification.dispatch import CeleryDispatcher
from verification.ratelimits import Limiter
from verification.service import VerificationService
from verification.store import Store, command_packer


def create_app(test_config: dict | None = None) -> Flask:
    """Defaults, then the environment, then `test_config` (settings by name, plus CELERY_APP)."""
    test_config = dict(test_config or {})
    celery_app = test_config.pop("CELERY_APP", None)
    settings = Settings.from_env(**test_config)
    if not settings.API_KEYS and not settings.DEVELOPMENT_MODE:
        # The worker needs no keys, so this check is the web app's own rather than Settings'.
        raise ConfigError("API_KEYS is required (or set DEVELOPMENT_MODE=1 for local use)")

    # Before the Flask app exists, so Flask adds no handler of its own.
    logs.configure(logs.resolve_format(settings.LOG_FORMAT, settings.DEVELOPMENT_MODE), settings.LOG_LEVEL)
    app = Flask(__name__)
    # Settings live in app.extensions["verification.settings"]; Flask's config gets only what Flask reads.
    app.config["MAX_CONTENT_LENGTH"] = settings.MAX_CONTENT_LENGTH
    app.json.sort_keys = False
    if settings.PROXY_FIX_HOPS:
        # Trust exactly this many proxies' X-Forwarded-* (client address, scheme, host, port): the
        # Twilio signature covers the public URL, and rate limits need the client's address.
        hops = settings.PROXY_FIX_HOPS
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)

    # No retries inside a request: a command whose answer was lost may have run, and running a check
    # again could spend an attempt twice. A Redis outage is a quick 503 instead (errors.py).
    connection = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2,
                                      health_check_interval=30, decode_responses=True,
                                      retry=Retry(NoBackoff(), 0), command_packer=command_packer())
    store = Store(connection, settings.VERIFICATION_RETENTION_SECONDS)
    if celery_app is None:
        import tasks

        celery_app = tasks.app
    app.extensions["verification"] = VerificationService(store, settings, CeleryDispatcher(celery_app, connection),
                                                         Limiter(settings))
    app.extensions["verification.settings"] = settings

    errors.register(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(durable.bp)
    app.register_blueprint(webhooks.bp)
    if settings.DEMO_PAGE:
        app.register_blueprint(demo.bp)
    if settings.BENCH_FLOOR_ROUTE:
        from verification import floor

        app.register_blueprint(floor.bp)

    # Operations: liveness/readiness, Prometheus metrics, the OpenAPI document and its docs page.
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(openapi.bp)

    return app


def __getattr__(name: str):
    # `gunicorn web:app` builds the app on first use, not when a test imports this module.
    if name == "app":
        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(name)
