"""Log lines: JSON with the verification id in production, plain locally; masked numbers, never a code."""

import json
import logging
import re

import pytest

from tests.conftest import API_KEY, code_in, wait_for
from verification import logs

# Numbers of this module's own, so no other test's SMS can be taken for one of ours.
PHONE = "+16505550301"
WORKER_PHONE = "+16505550302"
PLAIN_PHONE = "+16505550303"


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def shows(code: str, text: str) -> bool:
    # The code as a number of its own: not part of a longer number, a time or a duration like 0.0421s.
    return re.search(rf"(?<![0-9.]){code}(?![0-9])", text) is not None


def test_web_lines_are_json_with_the_verification_id_and_a_masked_number(make_app, capsys):
    client = make_app(LOG_FORMAT="json").test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {API_KEY}"
    capsys.readouterr()
    started = client.post("/v1/verifications", json={"phone": PHONE})
    assert started.status_code == 202
    verification_id = started.json["id"]

    err = capsys.readouterr().err
    lines = json_lines(err)
    assert lines, err
    about = [line for line in lines if line.get("verification_id") == verification_id]
    assert any(line["message"] == "verification started for +1650*****01" for line in about), lines
    for line in about:
        assert {"time", "level", "logger", "message"} <= set(line)
    assert PHONE not in err


def test_worker_lines_are_json_with_the_verification_id_and_no_code(make_app, twilio, worker):
    # Ten digits, so that no time, pid or id in the log can look like the code by chance.
    client = make_app(VERIFICATION_CODE_LENGTH="10").test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {API_KEY}"
    offset = len(worker.log())
    started = client.post("/v1/verifications", json={"phone": WORKER_PHONE})
    verification_id = started.json["id"]
    code = code_in(twilio.wait_for_message(WORKER_PHONE))
    assert client.post(f"/v1/verifications/{verification_id}/check", json={"code": code}).json["approved"]

    def lines_about():
        lines = json_lines(worker.log()[offset:])
        about = [line for line in lines if line.get("verification_id") == verification_id]
        # Three writers, in no fixed order on a busy machine: the send task's own line, then Celery's
        # trace line once it returns (both from a pool process), and the expiry task's "received"
        # line from the worker's main process. Wait for all three.
        sent = any("challenge sent" in line["message"] for line in about)
        traced = any(line["logger"] == "celery.app.trace" for line in about)
        expiry = any("verification.expire" in line["message"] for line in about)
        return about if sent and traced and expiry else None

    about = wait_for(lines_about)
    assert all(line["level"] in {"INFO", "WARNING"} for line in about)
    # Celery's own lines about the tasks carry the id too, taken from the tasks' argument.
    assert any(line["message"].startswith("Task verification.send_challenge") and line["message"].endswith(
        "received") for line in about)
    assert any(line["message"].startswith("Task verification.expire") for line in about)
    assert any(line["logger"] == "celery.app.trace" for line in about)
    text = worker.log()[offset:]
    assert WORKER_PHONE not in text
    assert len(code) == 10 and not shows(code, text)


def test_plain_lines_for_local_use(make_app, capsys):
    client = make_app(DEVELOPMENT_MODE="1", API_KEYS="").test_client()
    capsys.readouterr()
    started = client.post("/v1/verifications", json={"phone": PLAIN_PHONE})
    assert started.status_code == 202
    err = capsys.readouterr().err
    assert f"[{started.json['id']}] verification started for +1650*****03" in err
    assert not any(line.startswith("{") for line in err.splitlines())


@pytest.mark.parametrize(("message", "expected"), [
    ("challenge sent to +14155550123", "challenge sent to +1415*****23"),
    ("Your verification code is 0042", "Your verification code is [redacted]"),
    ("GET /durabletask/instances/abc?code=secret-key&taskHub=x HTTP/1.1",
     "GET /durabletask/instances/abc?code=[redacted]&taskHub=x HTTP/1.1"),
    ("check: wrong", "check: wrong"),
])
def test_scrub(message, expected):
    assert logs.scrub(message) == expected


def test_json_formatter_keeps_extras_and_exceptions():
    formatter = logs.JsonFormatter()
    try:
        raise ValueError("boom for +14155550123")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info())
    record.verification_id = "abc"
    record.attempt = 2
    line = json.loads(formatter.format(record))
    assert line["message"] == "failed here"
    assert line["verification_id"] == "abc"
    assert line["attempt"] == 2
    assert "ValueError: boom for +1415*****23" in line["exception"]


def test_json_formatter_scrubs_nested_extras():
    record = logging.LogRecord("celery.app.trace", logging.ERROR, __file__, 1, "Task failed", (), None)
    record.data = {"id": "t1", "exc": "SendError('to +14155550123')",
                   "traceback": ["url ?code=secret-key", {"deeper": "Your verification code is 0042"}]}
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["data"]["exc"] == "SendError('to +1415*****23')"
    assert line["data"]["traceback"] == ["url ?code=[redacted]", {"deeper": "Your verification code is [redacted]"}]


def test_json_time_is_each_record_own():
    """The formatter keeps the text of the last second it wrote: a record of another second gets its own."""
    formatter = logs.JsonFormatter()
    times = []
    for created in (1795733064.2201, 1795733064.9999, 1795733065.0004, 1795733064.5):
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
        record.created, record.msecs = created, int((created - int(created)) * 1000)
        times.append(json.loads(formatter.format(record))["time"])
    assert times == ["2026-11-26T22:44:24.220+00:00", "2026-11-26T22:44:24.999+00:00",
                     "2026-11-26T22:44:25.000+00:00", "2026-11-26T22:44:24.500+00:00"]
