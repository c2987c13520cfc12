"""Settings read from the environment, each with a default and its unit."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

import phonenumbers
from limits import parse_many

from verification import phone


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""


def _int(value: str | int, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None


def _bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _list(value: str | list | tuple) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return tuple(item.strip() for item in value.split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    # Redis for verification state; also the Celery broker unless CELERY_BROKER_URL is set.
    REDIS_URL: str = "redis://localhost:6379/0"
    # Seconds a person has to answer with the code.
    VERIFICATION_WINDOW_SECONDS: int = 90
    # Wrong codes allowed per verification (the sample's 4 tries).
    VERIFICATION_MAX_ATTEMPTS: int = 4
    # Digits in a code, 4 to 10.
    VERIFICATION_CODE_LENGTH: int = 4
    # Seconds a finished verification stays readable before Redis drops it.
    VERIFICATION_RETENTION_SECONDS: int = 86400
    # Key for the HMAC that stands in for the code in Redis; required outside development.
    CODE_HASH_SECRET: str = ""
    # Comma-separated API keys (several, so keys can be rotated).
    API_KEYS: tuple[str, ...] = ()
    # The URL clients and Twilio use to reach this service, e.g. https://verify.example.com.
    PUBLIC_BASE_URL: str = ""
    # `twilio` or `console`; console is chosen when no Twilio credentials are set.
    SMS_BACKEND: str = ""
    TWILIO_ACCOUNT_SID: str = ""
    TWILIO_AUTH_TOKEN: str = ""
    # Sender: a phone number in E.164, or a Messaging Service SID instead.
    TWILIO_PHONE_NUMBER: str = ""
    TWILIO_MESSAGING_SERVICE_SID: str = ""
    # Where the Twilio client sends its requests; a local stand-in in tests.
    TWILIO_API_BASE_URL: str = "https://api.twilio.com"
    # Seconds before a request to Twilio is abandoned.
    TWILIO_TIMEOUT_SECONDS: int = 10
    # Largest request body accepted, in bytes.
    MAX_CONTENT_LENGTH: int = 16384
    # Allows running with no API_KEYS and a built-in CODE_HASH_SECRET: for local use only.
    DEVELOPMENT_MODE: bool = False

    # --- Durable Functions compatibility ---
    # Task hub and connection names the Durable-style URLs carry (`taskHub=`, `connection=`), as the originals do.
    DURABLE_TASK_HUB: str = "DurableFunctionsHub"
    DURABLE_CONNECTION: str = "Storage"
    # Longest wait, in seconds, a start with `?timeout=` may hold a web worker; keep it below gunicorn's timeout (30 s).
    DURABLE_MAX_WAIT_SECONDS: int = 20

    # --- SMS replies and Twilio webhooks ---
    # Proxies in front of the app whose X-Forwarded-For/-Proto/-Host/-Port are trusted; 0 trusts none.
    PROXY_FIX_HOPS: int = 0
    # Seconds the reply to an inbound SMS is remembered by its MessageSid, so a retry counts once.
    TWILIO_INBOUND_DEDUP_SECONDS: int = 86400

    # --- Security and abuse limits ---
    # Rate limits in `limits` notation ("5/10 minutes"; several joined by ";"); "off" disables one.
    # SMS starts per phone number, as Twilio Verify allows.
    LIMIT_STARTS_PER_PHONE: str = "5/10 minutes"
    # Starts per API key: generous, so one backend's own traffic is never in its way.
    LIMIT_STARTS_PER_API_KEY: str = "50/second"
    # Starts per client IP address (behind a proxy, set PROXY_FIX_HOPS so the address is the client's).
    LIMIT_STARTS_PER_IP: str = "50/second"
    # SMS starts across the whole service: the circuit breaker against SMS pumping.
    LIMIT_SMS_GLOBAL: str = "1000/minute"
    # Code checks per client IP address, besides each verification's attempt budget.
    LIMIT_CHECKS_PER_IP: str = "600/minute"
    # ISO 3166 region codes a code may be sent to, comma-separated (US,CA,GB); empty allows every country.
    ALLOWED_COUNTRIES: tuple[str, ...] = ()
    # phonenumbers number types refused as destinations, comma-separated; "none" refuses none.
    BLOCKED_NUMBER_TYPES: tuple[str, ...] = ("FIXED_LINE", "PREMIUM_RATE", "TOLL_FREE", "SHARED_COST",
                                             "PERSONAL_NUMBER", "PAGER", "UAN", "VOICEMAIL")

    # --- Operations: metrics, logs ---
    # `json` or `plain`; empty means plain with DEVELOPMENT_MODE, JSON otherwise.
    LOG_FORMAT: str = ""
    # Lowest level logged by the web app (the worker takes Celery's `-l`).
    LOG_LEVEL: str = "INFO"
    # Port of the worker's own Prometheus page (0: none); its figures need PROMETHEUS_MULTIPROC_DIR.
    WORKER_METRICS_PORT: int = 0

    # --- Demo page ---
    # Serve the demo page at /demo (and / redirecting to it); its routes need no API key. Off in production.
    DEMO_PAGE: bool = False

    # --- Benchmarks ---
    # Serve POST /bench/floor (one Redis round trip), the floor `python -m bench` measures against. Never in production.
    BENCH_FLOOR_ROUTE: bool = False

    @classmethod
    def from_env(cls, environ=None, **overrides) -> "Settings":
        environ = os.environ if environ is None else environ
        values = {}
        for field in fields(cls):
            raw = overrides.get(field.name, environ.get(field.name))
            # An empty value is no value: `TWILIO_API_BASE_URL=` in a .env keeps the default.
            if raw is None or raw == "":
                continue
            values[field.name] = _coerce(field, raw)
        return cls(**values).validated()

    def validated(self) -> "Settings":
        if not 4 <= self.VERIFICATION_CODE_LENGTH <= 10:
            raise ConfigError("VERIFICATION_CODE_LENGTH must be between 4 and 10")
        if self.VERIFICATION_WINDOW_SECONDS < 1:
            raise ConfigError("VERIFICATION_WINDOW_SECONDS must be at least 1")
        if self.VERIFICATION_MAX_ATTEMPTS < 1:
            raise ConfigError("VERIFICATION_MAX_ATTEMPTS must be at least 1")
        if self.VERIFICATION_RETENTION_SECONDS < 1:
            raise ConfigError("VERIFICATION_RETENTION_SECONDS must be at least 1")
        if self.PROXY_FIX_HOPS < 0:
            raise ConfigError("PROXY_FIX_HOPS must be 0 or more")
        if self.TWILIO_INBOUND_DEDUP_SECONDS < 1:
            raise ConfigError("TWILIO_INBOUND_DEDUP_SECONDS must be at least 1")
        _check_abuse_settings(self)
        if not 0 <= self.DURABLE_MAX_WAIT_SECONDS <= 300:
            raise ConfigError("DURABLE_MAX_WAIT_SECONDS must be between 0 and 300")
        if self.LOG_FORMAT not in ("", "json", "plain"):
            raise ConfigError("LOG_FORMAT must be json or plain")
        if self.LOG_LEVEL.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError("LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        if not 0 <= self.WORKER_METRICS_PORT <= 65535:
            raise ConfigError("WORKER_METRICS_PORT must be a port number, or 0 for none")
        if self.SMS_BACKEND not in ("", "twilio", "console"):
            raise ConfigError("SMS_BACKEND must be twilio or console")
        if not self.SMS_BACKEND and self.sms_backend == "console" and not self.DEVELOPMENT_MODE:
            # The console sender prints codes to stdout, which is a log in production: never by default.
            raise ConfigError("No Twilio credentials: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, or "
                              "SMS_BACKEND=console (codes go to stdout), or DEVELOPMENT_MODE=1")
        if not self.CODE_HASH_SECRET:
            if not self.DEVELOPMENT_MODE:
                raise ConfigError("CODE_HASH_SECRET is required (or set DEVELOPMENT_MODE=1 for local use)")
            return replace(self, CODE_HASH_SECRET="development-only-secret")
        return self

    @property
    def sms_backend(self) -> str:
        if self.SMS_BACKEND:
            return self.SMS_BACKEND
        return "twilio" if self.TWILIO_ACCOUNT_SID and self.TWILIO_AUTH_TOKEN else "console"


def _check_abuse_settings(s: Settings) -> None:
    for name in ("LIMIT_STARTS_PER_PHONE", "LIMIT_STARTS_PER_API_KEY", "LIMIT_STARTS_PER_IP",
                 "LIMIT_SMS_GLOBAL", "LIMIT_CHECKS_PER_IP"):
        value = getattr(s, name).strip()
        if value.lower() != "off":
            try:
                parse_many(value)
            except ValueError:
                raise ConfigError(f"{name} must be a rate such as '5/10 minutes', or 'off'; "
                                  f"got {value!r}") from None
    unknown = sorted(c for c in s.ALLOWED_COUNTRIES if c.upper() not in phonenumbers.SUPPORTED_REGIONS)
    if unknown:
        raise ConfigError(f"ALLOWED_COUNTRIES has unknown region code(s): {', '.join(unknown)}")
    types = phone.blocked_type_names(tuple(s.BLOCKED_NUMBER_TYPES))
    unknown = sorted(t for t in types if not hasattr(phonenumbers.PhoneNumberType, t))
    if unknown:
        raise ConfigError(f"BLOCKED_NUMBER_TYPES has unknown type(s): {', '.join(unknown)}")


def _coerce(field, raw):
    if field.type == "int":
        return _int(raw, field.name)
    if field.type == "bool":
        return _bool(raw)
    if field.type.startswith("tuple"):
        return _list(raw)
    return str(raw)
