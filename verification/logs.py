"""Log lines as JSON (production) or plain text (local), with the verification id and nothing secret."""

from __future__ import annotations

import ast
import json
import logging
import re
import sys

from verification.model import utc_second
from verification.phone import mask

# A LogRecord's own attributes; anything else on a record came in through `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}

_PHONE = re.compile(r"\+[1-9][0-9]{6,14}\b")
# Belt and braces: the code never goes to a log by design, and an API key in a URL (`?code=`, the
# Azure Functions convention) must not go there by accident, e.g. in an access log line.
_SECRETS = (  # (what a match contains, pattern, replacement)
    ("code is ", re.compile(r"(code is )[0-9]+"), r"\1[redacted]"),
    ("=", re.compile(r"([?&](?:code|api_key|key)=)[^&\s\"']+"), r"\1[redacted]"),
)


def scrub(text: str) -> str:
    """Masks phone numbers and removes codes and keys from a line of text."""
    # Each pattern only where the text has what it needs to match (a request logs a line or two, most
    # with none of it): `in` costs a fraction of a regular expression's search.
    if "+" in text:
        text = _PHONE.sub(lambda m: mask(m.group(0)), text)
    for needle, pattern, replacement in _SECRETS:
        if needle in text:
            text = pattern.sub(replacement, text)
    return text


def _task_verification_id() -> str | None:
    """The id a running Celery task is about: every `verification.*` task takes it first."""
    try:
        from celery import current_task
    except ImportError:  # pragma: no cover - celery is a dependency
        return None
    task = current_task
    if not task or not getattr(task, "name", "") or not task.name.startswith("verification."):
        return None
    args = getattr(task.request, "args", None) or ()
    return args[0] if args and isinstance(args[0], str) else None


def _celery_data_verification_id(record: logging.LogRecord) -> str | None:
    """The id in Celery's own lines about a task ("Task ... received"), which carry its args as text."""
    data = getattr(record, "data", None)
    if not isinstance(data, dict) or not str(data.get("name", "")).startswith("verification."):
        return None
    try:
        args = ast.literal_eval(data.get("args") or "()")
    except (ValueError, SyntaxError):
        return None
    return args[0] if isinstance(args, (list, tuple)) and args and isinstance(args[0], str) else None


def verification_id(record: logging.LogRecord) -> str | None:
    return (getattr(record, "verification_id", None) or _task_verification_id()
            or _celery_data_verification_id(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, verification_id and other extras."""

    # A line for every check and start: what does not change from line to line is made once (the
    # encoder, the time to the second: utc_second keeps it), and extras are looked for only when a
    # record has any.
    _encode = json.JSONEncoder(ensure_ascii=False, default=str).encode

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": f"{utc_second(int(record.created))}.{int(record.msecs):03d}+00:00",
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        found = verification_id(record)
        if found:
            entry["verification_id"] = found
        extra = vars(record).keys() - _STANDARD - entry.keys()
        if extra:
            for key, value in vars(record).items():
                if key in extra and not key.startswith("_"):
                    entry[key] = _scrubbed(value)
        entry["process"] = record.process
        if record.exc_info:
            entry["exception"] = scrub(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = scrub(self.formatStack(record.stack_info))
        return self._encode(entry)


def _scrubbed(value, depth: int = 0):
    """Extras scrubbed all the way down: Celery logs task failures as a dict holding the traceback."""
    if isinstance(value, str):
        return scrub(value)
    if depth > 5:
        return scrub(str(value))
    if isinstance(value, dict):
        return {str(k): _scrubbed(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_scrubbed(v, depth + 1) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return scrub(str(value))


class PlainFormatter(logging.Formatter):
    """`2026-11-26 10:37:14,123 INFO verification.service [2ba4...] verification started for +1415*****00`."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s%(context)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        found = verification_id(record)
        record.context = f" [{found}]" if found else ""
        try:
            return scrub(super().format(record))
        finally:
            del record.context


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is now, so redirection (pytest, gunicorn) keeps working."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def formatter(log_format: str = "json") -> logging.Formatter:
    if log_format not in ("json", "plain"):
        raise ValueError(f"LOG_FORMAT must be json or plain, got {log_format!r}")
    return JsonFormatter() if log_format == "json" else PlainFormatter()


def resolve_format(log_format: str, development: bool) -> str:
    """LOG_FORMAT, or by default plain when developing and JSON otherwise."""
    return log_format or ("plain" if development else "json")


def configure(log_format: str = "json", level: str | int = "INFO") -> None:
    """Send every log line to stderr in `log_format`; calling it again replaces what it set before."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler.formatter, (JsonFormatter, PlainFormatter)):
            root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(formatter(log_format))
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # Neither format shows the caller's file and line or the thread, so skip finding them for every
    # record: the switches the Logging HOWTO gives under "Optimization" (a check logs one line).
    logging._srcfile = None
    logging.logThreads = False


def gunicorn_logconfig(log_format: str) -> dict:
    """gunicorn's `logconfig_dict`: its error and access lines through the same formatter, once."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"generic": {"()": "verification.logs.formatter", "log_format": log_format}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "generic", "stream": "ext://sys.stderr"},
            "error_console": {"class": "logging.StreamHandler", "formatter": "generic",
                              "stream": "ext://sys.stderr"},
        },
        "root": {"level": "INFO", "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
        },
    }
