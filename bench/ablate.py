"""`python -m bench.ablate [--checks N] [--rounds R]`: what each part of a check costs, by taking it out.

`bench.profile` and `bench.instructions` see the web app's own code only: not Redis's time, nor what
waiting on Redis does to the web app. This serves wrong-code checks from gunicorns that differ in one
thing each (VARIANTS): the shipped app twice (how far two identical servers differ), and the app with
parts of the check taken out as it is built (`bench/ablation.py`, `gunicorn bench.ablation:app`), Flask
among them, or with the per-IP rate limit off. The benchmark's own gunicorn serves only the floor and
the starts. They share the benchmark's stack (`-w 2 -k sync`, the project's gunicorn.conf.py, rate
limits on with ceilings no run reaches, the worker paused) and its Redis. After
a few untimed checks each, and a check that each variant lost what it should and kept the rest (from
its log, its /metrics, its answers, Redis's command counts and the rate limit's hits: `expected`),
each of R rounds sends N/R checks to every variant in turn (the order reversed every other round),
each between two runs of the floor (N/R/2 requests), as the benchmark does. A variant's figure is
the median of its rounds' throughput over the mean of the floor just before and just after, with
their range; the change is the median of its difference from the shipped check's in the same round.
Beside them, the CPU per check of the variant's gunicorn and of Redis, over all rounds. About three
minutes at the defaults on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

from bench import ablation
from bench.load import Load, post
from bench.phases import NEVER_RIGHT, started
from bench.stack import API_KEY, Stack, analysis_stack
from verification import keys
from verification.redis_server import free_port

LIMIT_OFF = {"LIMIT_CHECKS_PER_IP": "off"}
SHIPPED = "As shipped"
# (label, parts of bench/ablation.py taken out, environment), each served by a gunicorn of its own.
VARIANTS = (
    (SHIPPED, "", {}),
    ("As shipped: a second, identical gunicorn", "", {}),
    ("The service's log line off", "log", {}),
    ("The rate limit off (per IP, the only one a check has)", "", LIMIT_OFF),
    ("The log line, the metrics, the HMAC and the rate limit off", "log,metrics,hmac", LIMIT_OFF),
    ("The rate limit off, `check.lua` replaced by a script that only runs `HGETALL`", "script", LIMIT_OFF),
    ("The rate limit off, `check.lua` replaced by `HGETALL`", "hgetall", LIMIT_OFF),
    ("All of the above out", "log,metrics,hmac,hgetall", LIMIT_OFF),
    ("Served without Flask, all else kept (a WSGI function in front of it)", "flask", {}),
)
FLOOR = "Floor: POST /bench/floor"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ablate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checks", type=int, default=8000, help="wrong-code checks sent to each variant (default 8000)")
    p.add_argument("--rounds", type=int, default=8, help="rounds the checks are cut into (default 8)")
    p.add_argument("--clients", type=int, default=4, help="client processes sending load (default 4)")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.checks < args.rounds:
        p.error("--checks must be at least --rounds, and --rounds at least 1")
    print(table(measure(args.checks, args.rounds, args.clients)))
    return 0


def measure(checks: int, rounds: int, clients: int) -> dict[str, list[tuple[float, float, float, int]]]:
    """Per kind (the floor, then each variant), per run of it: (throughput over the floor's, web CPU s,
    Redis CPU s, requests)."""
    work = Path(tempfile.mkdtemp(prefix="bench-ablate-"))
    with analysis_stack(work, clients) as (stack, load):
        # Every variant on a gunicorn of its own, the shipped one too: the stack's own serves the floor
        # and the starts, so its caches are not a check's alone.
        ports = {}
        for label, ablate, env in VARIANTS:
            ports[label] = free_port()
            stack.start_web(ports[label], stack.env(BENCH_ABLATE=ablate, **env),
                            app="bench.ablation:app" if ablate else "web:app")
        # Three wrong checks a verification (it allows four), spread over the variants; the first
        # requests of each gunicorn (its imports, its first connections) are not timed.
        per_variant = checks + 3 * clients
        made = started(load, -(-per_variant * len(VARIANTS) // 3))
        sends = [post(f"/v1/verifications/{vid}/check", NEVER_RIGHT) for vid in made for _ in range(3)]
        floor = [post("/bench/floor", {"code": "0000"})] * max(checks // rounds // 2, 1)
        timed = {}
        for n, (label, ablate, env) in enumerate(VARIANTS):
            own = sends[n::len(VARIANTS)][:per_variant]
            _answered(load.run(own[:3 * clients], port=ports[label]), label)
            timed[label] = own[3 * clients:]
            _confirm(stack, ports[label], label, expected(ablate, env), load)
        # Per kind, per run: (throughput over the floor's around it, web CPU s, Redis CPU s, requests).
        results: dict[str, list] = {FLOOR: [], **{label: [] for label in ports}}

        def timed_run(kind: str, port: int, requests: list) -> tuple[float, tuple]:
            web0, redis0 = stack.server_cpu(port)
            result = _answered(load.run(requests, port=port), kind)
            web1, redis1 = stack.server_cpu(port)
            return result.throughput, (web1 - web0, redis1 - redis0, len(requests))

        before, cpu = timed_run(FLOOR, stack.port, floor)
        results[FLOOR].append((1.0, *cpu))
        for r in range(rounds):
            for label in ports if r % 2 == 0 else reversed(ports):
                rps, cpu = timed_run(label, ports[label], timed[label][r::rounds])
                after, floor_cpu = timed_run(FLOOR, stack.port, floor)
                # Against the floor just before and just after it: a shared machine drifts within a round.
                results[label].append((rps / ((before + after) / 2), *cpu))
                results[FLOOR].append((1.0, *floor_cpu))
                before = after
    shutil.rmtree(work, ignore_errors=True)  # kept when something failed, for its logs
    return results


def _answered(result, kind: str):
    if set(result.statuses()) != {200}:
        raise RuntimeError(f"{kind}: {result.statuses()}")
    return result


def expected(ablate: str, env: dict) -> dict[str, bool]:
    """What a variant keeps of the check, by what it takes out (ablate) and its environment."""
    parts = set(filter(None, ablate.split(",")))
    scripted = not parts & {"script", "hgetall"}  # check.lua runs: it compares codes and spends attempts
    return {
        "log line": "log" not in parts,
        "metrics": "metrics" not in parts,
        "spent attempt": scripted,
        "a script": "hgetall" not in parts,
        "HMAC": scripted and "hmac" not in parts,  # a made-up stored hash does not match any code's HMAC
        "rate limit": env.get("LIMIT_CHECKS_PER_IP") != "off",
        "Flask": "flask" not in parts,
    }


def _confirm(stack: Stack, port: int, label: str, wanted: dict[str, bool], load: Load) -> None:
    """That the variant on `port` kept what it should of the check and lost the rest, from what it shows
    (its log, its /metrics, its answers, Redis's count of scripts run, the rate limit's hits), so that a
    table row is what it says."""
    state = stack.redis()

    def hits() -> list:  # the newest hit of each per-IP limit: a check that takes a slot pushes a new one
        return [state.lindex(key, 0) for key in sorted(state.scan_iter("LIMITS:LIMITER/checks_per_ip/*"))]

    vid, made_up = started(load, 2)
    fresh = _request(port, f"/v1/verifications/{vid}")["attemptsRemaining"]
    before, scripts = hits(), _scripts_run(state)
    headers = {}
    remaining = _request(port, f"/v1/verifications/{vid}/check", NEVER_RIGHT, headers)["attemptsRemaining"]
    taken, scripted = hits() != before, _scripts_run(state) > scripts
    # A stored hash that no code's HMAC matches: only a variant without the HMAC approves a code with it.
    state.hset(keys.state(made_up), "hash", ablation.MADE_UP_DIGEST)
    approved = _request(port, f"/v1/verifications/{made_up}/check", {"code": "0000"})["approved"]
    log = (stack.workdir / f"web-{port}.log").read_text(errors="replace")
    counted = sum(float(value) for value in re.findall(
        r'^verification_checks_total\{[^}]*outcome="wrong"[^}]*\} (\S+)$', _request(port, "/metrics"), re.MULTILINE))
    found = {"log line": '"check: wrong"' in log, "metrics": counted > 0, "spent attempt": remaining < fresh,
             "a script": scripted, "HMAC": remaining < fresh and not approved, "rate limit": taken,
             "Flask": ablation.WITHOUT_FLASK not in headers}
    if found != wanted:
        raise RuntimeError(f"{label}: expected {wanted}, found {found}; see {stack.workdir}/web-{port}.log")


def _scripts_run(state) -> int:
    return state.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)


def _request(port: int, path: str, body: dict | None = None, headers: dict | None = None) -> dict | str:
    """One request to the variant on `port`: a GET without `body`, else a POST of it as JSON; the answer
    decoded from JSON when it is JSON, its headers put in `headers` when given."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        if headers is not None:
            headers.update(response.headers.items())
        text = response.read().decode()
        return json.loads(text) if response.headers.get_content_type() == "application/json" else text


def table(results: dict[str, list[tuple[float, float, float, int]]]) -> str:
    ratios = {kind: [row[0] for row in rows] for kind, rows in results.items()}
    lines = [
        f"Wrong-code checks against the floor in {len(ratios[SHIPPED])} rounds (see `python -m bench.ablate --help`):",
        "",
        "| The check, with | vs floor: median (range) | Change from the shipped check, same round: median "
        "| Web CPU per check (ms) | Redis CPU per check (ms) |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, rows in results.items():
        mine = ratios[kind]
        change = "" if kind in (FLOOR, SHIPPED) else \
            f"{round(statistics.median(a - b for a, b in zip(mine, ratios[SHIPPED])) * 100):+d}"
        requests = sum(row[3] for row in rows)
        web, redis_ = (sum(row[i] for row in rows) / requests * 1000 for i in (1, 2))
        lines.append(f"| {kind} | {statistics.median(mine):.0%} ({min(mine):.0%}-{max(mine):.0%}) | {change} "
                     f"| {web:.3f} | {redis_:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
