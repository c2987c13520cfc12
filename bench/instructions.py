"""`python -m bench.instructions [--requests N]`: the instructions the web app runs per request, counted.

CPU time per request moves by up to half from one run to the next on a shared machine; the instructions
a request executes do not. This runs the web app in one process under valgrind's callgrind, called
through WSGI as gunicorn calls it, against a real Redis, with the benchmark's settings (rate limits on,
ceilings no run reaches), and counts only inside each loop of requests: the floor, starts, and checks
with a wrong code; then the floor and the checks again, each served by a WSGI function instead of Flask
(`bench/ablation.py`), so that what Flask takes of a request shows. Redis's own work and gunicorn's are
not counted: the web app's alone. Needs `valgrind` on PATH (Debian: `apt-get install valgrind`); about
a minute at the default count.
"""

from __future__ import annotations

import argparse
import functools
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.phases import NEVER_RIGHT, PHONES
from bench.stack import API_KEY, ROOT, app_env
from verification.redis_server import RedisServer

KINDS = ("Floor: POST /bench/floor", "Start: POST /v1/verifications", "Check, wrong code")
# What this counts: KINDS, then the floor's work and the check's, each served by a WSGI function instead
# of Flask (bench/ablation.py).
COUNTED = (*KINDS, "Floor without Flask", "Check, wrong code, without Flask")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    p.add_argument("--requests", type=int, default=150, help="requests of each kind counted (default 150)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _send(args.requests)
        return 0
    if not shutil.which("valgrind"):
        print("valgrind is not on PATH (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    counts = count(args.requests)
    print(table(counts, args.requests))
    return 0


def count(requests: int) -> list[int]:
    """Instructions per request of each of COUNTED, in order."""
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        work = Path(tmp)
        server = RedisServer(work / "redis").start()
        try:
            out = work / "callgrind.out"
            env = app_env(server.url, 900, True, SMS_BACKEND="console", LOG_FORMAT="json",
                          PROMETHEUS_MULTIPROC_DIR=str(work), BENCH_CALLGRIND_OUT=str(out),
                          PYTHONHASHSEED="0")  # the same dicts every run
            # Counting is on only inside functools.reduce, which runs each kind's loop, and each call's
            # figures are written as it ends (callgrind.out.1, .2, ...). A library may call it while the
            # app starts, so the loops' are the three after the ones the child found before its loops.
            with open(work / "app.log", "wb") as app_log:
                subprocess.run(
                    ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", f"--log-file={work / 'vg.log'}",
                     "--toggle-collect=functools_reduce", "--dump-after=functools_reduce",
                     sys.executable, "-m", "bench.instructions", "--child", "--requests", str(requests)],
                    cwd=ROOT, env=env, stdout=app_log, stderr=app_log, check=True)
            first = int((work / "callgrind.out.before").read_text()) + 1
            return [_total(Path(f"{out}.{n}")) // requests for n in range(first, first + len(COUNTED))]
        finally:
            server.stop()


def _total(dump: Path) -> int:
    """The instructions a callgrind dump counted (its `totals:` or `summary:` line)."""
    found = dump.exists() and re.search(r"^(?:totals|summary): (\d+)", dump.read_text(), re.MULTILINE)
    if not found or not int(found.group(1)):
        # e.g. a Python whose functools.reduce callgrind cannot name (a stripped build)
        raise RuntimeError(f"callgrind counted nothing for a loop of requests ({dump.name})")
    return int(found.group(1))


def table(counts: list[int], requests: int) -> str:
    rows = [f"| {kind} | {n:,} | {n / counts[0]:.2f} |" for kind, n in zip(COUNTED, counts)]
    return "\n".join([f"Instructions the web app ran per request (callgrind, {requests} requests of each kind):",
                      "", "| Request | Instructions | × floor |", "|---|---:|---:|", *rows])


def _send(requests: int) -> None:
    """In the counted process: the app, warmed up, then each kind's loop inside functools.reduce."""
    from werkzeug.test import EnvironBuilder

    import web
    from bench import ablation

    app = web.create_app()
    checks_without_flask = web.create_app()
    ablation.serve_checks_without_flask(checks_without_flask)
    floor_without_flask = ablation.floor_without_flask(app)
    headers = {"Authorization": f"Bearer {API_KEY}"}

    def environ(path: str, body: dict, with_key: bool = True) -> dict:
        return EnvironBuilder(path=path, method="POST", data=json.dumps(body), content_type="application/json",
                              headers=headers if with_key else {},
                              environ_base={"REMOTE_ADDR": "127.0.0.1"}).get_environ()

    def caller(served):
        def call(status, env):
            answered = []
            b"".join(served(env, lambda line, _headers, _exc=None: answered.append(line)))
            if not answered[0].startswith(status):
                raise RuntimeError(f"{env['PATH_INFO']}: {answered[0]}")
            return status

        return call

    floor = lambda: environ("/bench/floor", {"code": "0000"}, with_key=False)  # noqa: E731
    start = lambda: environ("/v1/verifications", {"phone": next(PHONES)})  # noqa: E731
    ids = []
    for _ in range(2 * requests // 3 + 6):
        env = start()
        body = b"".join(app(env, lambda *_: None))
        ids.append(json.loads(body)["id"])
    # Five digits: never a 4-digit code (a wrong length is a wrong code), so every check is a wrong one.
    checks = (environ(f"/v1/verifications/{vid}/check", NEVER_RIGHT) for vid in ids for _ in range(3))
    # Warm: every path once before counting (first imports, compiled patterns, the kept producer).
    apps = (app, app, app, floor_without_flask, checks_without_flask)
    made = (floor, start, lambda: next(checks), floor, lambda: next(checks))
    for served, make in zip(apps, made):
        answered = []
        b"".join(served(make(), lambda line, headers, _exc=None: answered.append((line, dict(headers)))))
        line, answer_headers = answered[0]
        plain = served in (floor_without_flask, checks_without_flask)  # each of whose answers says so
        if not line.startswith("20") or (ablation.WITHOUT_FLASK in answer_headers) != plain:
            raise RuntimeError(f"warming up: {line}, {'not ' if plain else ''}served by Flask")
    loops = [[make() for _ in range(requests)] for make in made]
    out = os.environ["BENCH_CALLGRIND_OUT"]
    Path(f"{out}.before").write_text(str(len(glob.glob(f"{glob.escape(out)}.[0-9]*"))))
    for served, loop in zip(apps, loops):
        functools.reduce(caller(served), loop, "20")


if __name__ == "__main__":
    sys.exit(main())
