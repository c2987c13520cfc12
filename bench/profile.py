"""`python -m bench.profile [--requests N]`: where the web app's time goes under gunicorn, sampled by py-spy.

The throughput ratios say how much more a start or a check costs than the floor; this says on what.
It starts the benchmark's stack (Redis, the Twilio stand-in, a Celery worker, paused) and three more
gunicorns as the benchmark runs its own (`-w 2 -k sync`, the project's gunicorn.conf.py, rate limits
on with ceilings no run reaches), each launched by `py-spy record --gil --subprocesses`, so py-spy
needs no rights over processes but its own. One serves the floor, one starts, one checks with a wrong
code; the load clients send N requests of each, the three kinds taking turns in rounds so that a
shared machine's drift falls on all of them, and then the gunicorns stop and py-spy writes its
samples. Only a worker's samples while it serves a request and holds the GIL count: not its wait for
Redis or a client, nor the kernel's time for its sockets and log writes (the CPU table of
`python -m bench` has those). py-spy pauses a process to sample it, so these are shares of time, not
CPU counts; the first requests' one-time costs (imports, the kept producer) are in them.

Each sample goes to one part of the request: a library's (`LIBRARIES`, tested in order) when one of
its frames is below Flask in the sample's stack; otherwise the service's own code or Flask's and
Werkzeug's, by the innermost frame of either; gunicorn's when the sample is not inside the app. The
table gives each part per request, as a share of a floor request's samples, so that the last columns
are what a start and a check cost beyond the floor, part by part. Needs py-spy (the test extra has
it, or `pip install py-spy`); about 40 seconds at the default count.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.instructions import KINDS
from bench.load import post
from bench.phases import NEVER_RIGHT, PHONES, started
from bench.stack import Stack, analysis_stack
from verification.redis_server import free_port

IN_APP = "Flask.__call__ ("
SERVING = "SyncWorker.run ("  # a worker's request loop: its start (importing the app) does not count
# (part, the frames that are its own), in the order a sample is tested: a sample with a frame of one of
# them anywhere below Flask is that part's, so the log line a start writes from the service is the log line's.
LIBRARIES = (
    ("Celery and kombu: the task messages and their events", ("(celery/", "(kombu/")),
    ("phonenumbers: the number's validation", ("(phonenumbers/",)),
    ("The service's log line", ("(logging/", "(verification/logs.py")),
    ("Prometheus metrics", ("(prometheus_client/", "(verification/metrics.py")),
    ("redis-py: the round trip (sending, parsing the reply)", ("(redis/",)),
    ("HMAC of the code", ("(hmac.py", "(verification/codes.py")),
)
SERVICE = "The service's own code (verification/)"
OWN = ("(verification/", "(web.py")
FLASK = "Flask and Werkzeug: routing, request, response"
GUNICORN_LOG = "gunicorn: its access log line"
ACCESS_LOG = "Logger.access (gunicorn/glogging.py"
GUNICORN = "gunicorn: HTTP parsing, sockets"
ORDER = (GUNICORN, GUNICORN_LOG, FLASK, *(name for name, _ in LIBRARIES), SERVICE)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=6000, help="requests of each kind (default 6000)")
    p.add_argument("--rate", type=int, default=250, help="py-spy's samples per second and process (default 250)")
    p.add_argument("--clients", type=int, default=4, help="client processes sending load (default 4)")
    p.add_argument("--rounds", type=int, default=5, help="turns the kinds take, a part of each at a time (default 5)")
    p.add_argument("--keep", type=Path, default=None, help="keep py-spy's raw stacks here, a file per kind")
    args = p.parse_args(argv)
    spy = py_spy()
    if not spy:
        print("py-spy is not installed (pip install 'py-spy>=0.4,<0.5'; the test extra has it)", file=sys.stderr)
        return 2
    counts = profile(spy, args.requests, args.rate, args.clients, args.rounds, args.keep)
    print(table(counts, args.requests, args.rate))
    return 0


def py_spy() -> str | None:
    """py-spy's path: on PATH, or beside this Python (a virtual environment's, not activated)."""
    return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


def profile(spy: str, requests: int, rate: int, clients: int, rounds: int = 5,
            keep: Path | None = None) -> dict[str, collections.Counter]:
    """Samples per part for each of KINDS, from `requests` requests each."""
    work = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    with contextlib.ExitStack() as cleanup:
        stack, load = cleanup.enter_context(analysis_stack(work, clients))
        made = started(load, requests // 3 + 1)  # a verification takes three wrong checks
        sends = {
            KINDS[0]: [post("/bench/floor", {"code": "0000"}) for _ in range(requests)],
            KINDS[1]: [post("/v1/verifications", {"phone": next(PHONES)}) for _ in range(requests)],
            KINDS[2]: [post(f"/v1/verifications/{vid}/check", NEVER_RIGHT) for vid in made for _ in range(3)][:requests],
        }
        spied = {}
        for n, kind in enumerate(KINDS):
            raw = (keep.resolve() if keep else work) / f"py-spy-{n}.txt"
            raw.parent.mkdir(parents=True, exist_ok=True)
            port = free_port()
            # Stopped before the stack, which would stop py-spy and leave its gunicorn running.
            cleanup.callback(_stop_under, stack, port)
            stack.start_web(port, stack.env(), wrap=[spy, "record", "--gil", "--subprocesses", "--nolineno",
                                                     "-r", str(rate), "-f", "raw", "-o", str(raw), "--"])
            spied[kind] = port, raw
        for r in range(rounds):
            for kind, (port, _) in spied.items():
                result = load.run(sends[kind][r::rounds], port=port)
                if set(result.statuses()) - {200, 202}:
                    raise RuntimeError(f"{kind}: {result.statuses()}; see {work}")
        counts = {}
        for kind, (port, raw) in spied.items():
            _stop_under(stack, port)
            if not raw.exists():
                raise RuntimeError(f"py-spy wrote no samples; see {work}/web-{port}.log")
            counts[kind] = parts(raw.read_text())
    shutil.rmtree(work, ignore_errors=True)  # kept when something failed, for its logs
    return counts


def _stop_under(stack: Stack, port: int) -> None:
    """Stop the gunicorn on `port` that py-spy runs: py-spy writes its samples once its child has gone
    (a SIGTERM to py-spy itself would end it without them and leave gunicorn running)."""
    spy = stack.web.pop(port, None)
    if spy is None:
        return
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(Path(f"/proc/{spy.pid}/task/{spy.pid}/children").read_text().split()[0]), signal.SIGTERM)
    try:
        spy.wait(60)
    except subprocess.TimeoutExpired:
        spy.send_signal(signal.SIGINT)  # py-spy's own stop, on Ctrl-C
        spy.wait(30)


def parts(raw: str) -> collections.Counter:
    """py-spy's raw stacks (`frame;frame;... count`) as samples per part; only a serving worker's count."""
    counted: collections.Counter = collections.Counter()
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if SERVING not in stack or not n.isdigit():
            continue
        counted[part(stack.split(";"))] += int(n)
    return counted


def part(frames: list[str]) -> str:
    inside = [i for i, frame in enumerate(frames) if IN_APP in frame]
    if not inside:
        return GUNICORN_LOG if any(ACCESS_LOG in frame for frame in frames) else GUNICORN
    below = frames[inside[-1] + 1:]
    for name, own in LIBRARIES:
        if any(mark in frame for frame in below for mark in own):
            return name
    # The rest is the service's own code or the framework's, by the innermost frame of either: the service's
    # `ipaddress` call is the service's, Flask's `json.dumps` is Flask's.
    for frame in reversed(below):
        if any(mark in frame for mark in OWN):
            return SERVICE
        if "(flask/" in frame or "(werkzeug/" in frame:
            return FLASK
    return FLASK


def table(counts: dict[str, collections.Counter], requests: int, rate: int) -> str:
    floor = sum(counts[KINDS[0]].values())
    if not floor:
        raise RuntimeError("no samples of the floor's requests")
    share = {kind: {name: c[name] / floor for name in ORDER} for kind, c in counts.items()}
    lines = [f"Where the web app's time goes (py-spy --gil at {rate} Hz, {requests} requests of each kind), "
             "per request, as a share of a floor request's samples:", "",
             "| Part | Floor | Start | Check, wrong code | Start − floor | Check − floor |",
             "|---|---:|---:|---:|---:|---:|"]
    floor_share, start, check = (share[kind] for kind in KINDS)
    for name in ORDER:
        lines.append(f"| {name} | {floor_share[name]:.2f} | {start[name]:.2f} | {check[name]:.2f} | "
                     f"{start[name] - floor_share[name]:+.2f} | {check[name] - floor_share[name]:+.2f} |")
    totals = [sum(share[kind].values()) for kind in KINDS]
    lines.append(f"| **Total** | {totals[0]:.2f} | {totals[1]:.2f} | {totals[2]:.2f} | "
                 f"{totals[1] - totals[0]:+.2f} | {totals[2] - totals[0]:+.2f} |")
    lines += ["", "Samples: " + ", ".join(f"{kind} {sum(counts[kind].values()):,}" for kind in KINDS) + "."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
