"""Settings read from the environment, each with a default and its unit."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace


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

    # --- SMS replies and Twilio webhooks ---

    # --- Security and abuse limits ---

    # --- Operations: metrics, logs ---

    # --- Demo page ---

    @classmethod
    def from_env(cls, environ=None, **overrides) -> "Settings":
        environ = os.environ if environ is None else environ
        values = {}
        for field in fields(cls):
            raw = overrides.get(field.name, environ.get(field.name))
            if raw is None or raw == "" and field.type != "str":
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


def _coerce(field, raw):
    if field.type == "int":
        return _int(raw, field.name)
    if field.type == "bool":
        return _bool(raw)
    if field.type.startswith("tuple"):
        return _list(raw)
    return str(raw)
