"""The operator's command line against a live server: start, status, check, cancel, list, purge."""

import json
import subprocess
import sys

import pytest

from tests.conftest import API_KEY, ROOT, code_in, serving
from verification import cli

PHONE = "+16505550330"


@pytest.fixture
def server(make_app):
    # The server shares this process's stderr with the command line: it keeps quiet.
    with serving(make_app(LOG_LEVEL="WARNING")) as url:
        yield url


@pytest.fixture
def run(server, monkeypatch, capsys):
    monkeypatch.setenv("VERIFICATION_API_URL", server)
    monkeypatch.setenv("VERIFICATION_API_KEY", API_KEY)

    def run(*argv):
        capsys.readouterr()
        status = cli.main(list(argv))
        out, err = capsys.readouterr()
        return status, json.loads(out) if out else None, json.loads(err) if err.startswith("{") else err

    return run


def test_a_verification_from_start_to_approval(run, twilio, worker):
    status, started, _ = run("start", PHONE)
    assert status == 0
    assert started["status"] == "pending"
    code = code_in(twilio.wait_for_message(PHONE))

    status, shown, _ = run("status", started["id"])
    assert status == 0 and shown["id"] == started["id"]

    status, checked, _ = run("check", started["id"], code)
    assert status == 0
    assert checked["approved"] is True and checked["status"] == "approved"


def test_cancel_then_errors_exit_non_zero(run):
    _, started, _ = run("start", "+16505550331")
    status, canceled, _ = run("cancel", started["id"])
    assert status == 0 and canceled["status"] == "canceled"

    status, out, err = run("cancel", started["id"])
    assert status == 1 and out is None
    assert err["error"]["code"] == "not_pending"
    status, _, err = run("check", started["id"], "12")
    assert status == 1 and err["error"]["code"] == "invalid_code"
    status, _, err = run("status", "no-such-id")
    assert status == 1 and err["error"]["code"] == "not_found"
    status, _, err = run("start", "not a number")
    assert status == 1 and err["error"]["code"] == "invalid_phone"


def test_list_and_purge(run):
    ids = [run("start", f"+1650555034{i}")[1]["id"] for i in range(3)]
    run("cancel", ids[0])

    status, listed, _ = run("list", "--limit", "2")
    assert status == 0
    assert [item["instanceId"] for item in listed] == ids[:2]
    status, running, _ = run("list", "--status", "Running")
    assert [item["instanceId"] for item in running] == ids[1:]

    status, purged, _ = run("purge", ids[0])
    assert status == 0 and purged == {"instancesDeleted": 1}
    assert run("status", ids[0])[0] == 1
    assert run("purge", ids[0])[0] == 1


def test_a_wrong_key_and_an_unreachable_server(run, monkeypatch, capsys):
    monkeypatch.setenv("VERIFICATION_API_KEY", "wrong")
    status, _, err = run("status", "x")
    assert status == 1 and err["error"]["code"] == "unauthorized"

    monkeypatch.setenv("VERIFICATION_API_URL", "http://127.0.0.1:9")
    status, _, err = run("status", "x")
    assert status == 3 and "could not be reached" in err


def test_python_dash_m_verification():
    result = subprocess.run([sys.executable, "-m", "verification", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0
    for command in ("start", "status", "check", "cancel", "list", "purge", "VERIFICATION_API_KEY"):
        assert command in result.stdout
    usage = subprocess.run([sys.executable, "-m", "verification", "check", "only-an-id"], cwd=ROOT,
                           capture_output=True, text=True, timeout=30)
    assert usage.returncode == 2
