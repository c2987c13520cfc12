"""Figures from raw timings, and docs/benchmarks.md: tables, ASCII histograms, the machine."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
from pathlib import Path


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return quantile(sorted(values), p / 100)


def quantile(ordered: list[float], share: float) -> float:
    """The value within which `share` of the sorted values lie (nearest rank)."""
    return ordered[max(0, min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1))]


def histogram(values_ms: list[float], width: int = 40) -> list[str]:
    """Log-spaced buckets (ms), one line each: `upper bound | bar count`."""
    if not values_ms:
        return []
    bounds = [0.5, 1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1000, 1500, 2000,
              3000, 5000, float("inf")]
    counts = [0] * len(bounds)
    for value in values_ms:
        counts[next(i for i, bound in enumerate(bounds) if value <= bound)] += 1
    first = next(i for i, c in enumerate(counts) if c)
    last = max(i for i, c in enumerate(counts) if c)
    top = max(counts)
    lines = []
    for bound, count in list(zip(bounds, counts))[first:last + 1]:
        label = "  > 5000" if bound == float("inf") else f"≤ {bound:>6g}"
        lines.append(f"{label} ms | {'#' * max(1 if count else 0, round(width * count / top)):<{width}} {count}")
    return lines


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from verification.redis_server import find_binary

    server = subprocess.run([find_binary(), "--version"], capture_output=True, text=True).stdout.strip()
    versions = {}
    for name in ("flask", "celery", "kombu", "redis", "gunicorn", "limits"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:
            versions[name] = "?"
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": sys.version.split()[0], "redis_server": server,
            "platform": platform.platform(), "load": os.getloadavg(), "versions": versions}


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def markdown(results: dict, command: str, plot: str | None = None) -> str:
    """The results as Markdown; `plot` names the latency chart (bench/plot.py) beside the page, if any."""
    m = results["machine"]
    out = ["## The last run", "",
           "Written by `python -m bench` (see the README's Benchmarks section); rerun it to refresh this part.", "",
           f"Command: `{command}`", "",
           "## Machine", "",
           f"- {m['nproc']} CPUs: {m['cpu']}; {m['platform']}",
           f"- Python {m['python']}; {m['redis_server']}",
           "- " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
           f"- Load average at the start of the run: {m['load_before'][0]:.2f} {m['load_before'][1]:.2f} "
           f"{m['load_before'][2]:.2f}; at the end: {m['load'][0]:.2f} {m['load'][1]:.2f} {m['load'][2]:.2f}",
           f"- {results['setup']}", "",
           "## Throughput and latency", "",
           "Each phase sends a fixed number of requests from separate client processes over loopback; the "
           "Celery worker is paused (SIGSTOP) while a phase is timed, so every phase has the same CPUs. A shared "
           "machine drifts within a run, so each phase is cut into rounds, each sent between two runs of the "
           "floor on the same server: a round's ratio is its throughput over the mean of the floor just before "
           "and just after it. *vs floor* is the median of the rounds' ratios, with their range; the floor "
           "column is the mean of the floor runs around the phase.", "",
           "| Phase | Requests | Clients | Rounds | Throughput (req/s) | Floor around it (req/s) | vs floor "
           "(range) | p50 (ms) | p99 (ms) | Statuses |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, row in results["throughput"].items():
        spread = "" if row["rounds"] == 1 else f" ({row['ratio_min']:.0%}-{row['ratio_max']:.0%})"
        out.append(f"| {row['label']} | {row['requests']} | {row['clients']} | {row['rounds']} | {row['rps']:.0f} | "
                   f"{row['floor_rps']:.0f} | {row['ratio']:.0%}{spread} | {fmt_ms(row['p50'])} | "
                   f"{fmt_ms(row['p99'])} | "
                   f"{', '.join(f'{k}: {v}' for k, v in sorted(row['statuses'].items()))} |")
    out += ["", "## CPU per request", "",
            "The CPU time each phase cost per request, from the kernel's CPU clock of each process, read "
            "around every round and every floor run: the web app (gunicorn's master and "
            "workers), Redis, and the load clients; the worker is paused. During a phase every CPU is busy, "
            "so throughput goes as the inverse of the total: *floor / this* is the throughput ratio this CPU "
            "cost gives, the median of the rounds' (each against the floor runs just before and after it), "
            "with their range. The milliseconds are over the whole phase and over all its floor runs. The "
            "targets are judged on throughput.", "",
            "| Phase | Web (ms) | Redis (ms) | Clients (ms) | Total (ms) | Floor's total around it (ms) "
            "| Floor / this (range) |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for row in results["throughput"].values():
        web, redis_, clients = (v * 1000 for v in row["cpu"])
        spread = "" if row["rounds"] == 1 else f" ({row['cpu_ratio_min']:.0%}-{row['cpu_ratio_max']:.0%})"
        out.append(f"| {row['label']} | {web:.3f} | {redis_:.3f} | {clients:.3f} | {web + redis_ + clients:.3f} | "
                   f"{sum(row['floor_cpu']) * 1000:.3f} | {row['cpu_ratio']:.0%}{spread} |")
    sms, exp = results["sms"], results["expiry"]
    out += ["", "## Start to SMS, and expiry", "",
            "| Figure | Count | p50 | p99 | max |", "|---|---:|---:|---:|---:|",
            f"| Start request sent → SMS request at the Twilio stand-in ({sms['rate']:g} starts/s) | {sms['count']} | "
            f"{fmt_ms(sms['p50'])} ms | {fmt_ms(sms['p99'])} ms | {fmt_ms(sms['max'])} ms |",
            f"| Expiry lag: deadline → status `expired` ({exp['count']} deadlines within {exp['spread']:g} s) | "
            f"{exp['expired']} | {exp['p50_ms']:.0f} ms | {exp['p99_ms']:.0f} ms | {exp['max_ms']:.0f} ms |",
            "", "Expiry lag is the state hash's `updated` minus its `expires`, both written by Redis's clock; "
            "the verifications are made with the service's own `Store.create` and `CeleryDispatcher` "
            "(one expiry task each, no SMS) so their deadlines fall within the stated spread."]
    rt = results["round_trips"]
    out += ["", "## Redis round trips per request", "",
            "Counted by Redis: `INFO stats` `total_reads_processed` (one per read of a client's socket, so a "
            "pipeline counts once) before and after a run of requests from one client, with the worker paused "
            "and nothing else talking to Redis; the INFO call itself is subtracted. Commands from `INFO "
            "commandstats` (those inside Lua included).", "",
            "| Request | Rate limits | Round trips | Commands per request |", "|---|---|---:|---|"]
    for row in rt:
        out.append(f"| {row['label']} | {row['limits']} | {row['round_trips']:.2f} | "
                   f"{', '.join(f'{k} {v:g}' for k, v in row['commands'].items())} |")
    for name, lines in results["traces"].items():
        out += ["", f"MONITOR during one {name} (client = db:port, or lua inside a script):", "", "```", *lines, "```"]
    mem = results["memory"]
    out += ["", "## Memory", "",
            "| Figure | Value |", "|---|---:|",
            f"| Pending verifications measured (the worker holding their expiry tasks in memory) | {mem['count']} |",
            f"| Redis `used_memory` per pending verification | {mem['per_pending']:.0f} B |",
            "| Redis process RSS per pending verification, after `MEMORY PURGE` (with the allocator's own "
            "overhead, which `used_memory` leaves out under libc malloc: see Machine) | "
            f"{mem['redis_rss_per']:.0f} B |",
            f"| … of which the broker (`unacked` hash + `unacked_index` zset) | {mem['broker_per']:.0f} B |",
            "| … the rest: state hash (with its events), phone index (with the start times its rate limit "
            f"counts), the two zsets, Redis overhead | {mem['state_per']:.0f} B |",
            f"| Sample: state hash / phone index (`MEMORY USAGE`) | "
            f"{mem['keys']['state']:.0f} / {mem['keys']['phone']:.0f} B |",
            f"| One expiry task message, as queued (JSON; a worker holding it keeps no copy in Redis) | {mem['message_bytes']} B |",
            f"| Worker RSS, main process: idle → holding {mem['held']} expiry tasks | "
            f"{mem['rss_main0'] / 2**20:.1f} → {mem['rss_main1'] / 2**20:.1f} MiB |",
            f"| Worker RSS, main + pool processes | {mem['rss_all0'] / 2**20:.1f} → {mem['rss_all1'] / 2**20:.1f} MiB |",
            f"| Worker RSS per held task (main process delta / tasks added) | {mem['rss_per_task']:.0f} B |"]
    out += ["", "## Latency distributions", ""]
    if plot:
        out += [f"![Each phase's latencies as the share of requests answered within a time]({plot})", ""]
    for name, row in results["throughput"].items():
        out += [f"{row['label']} (ms):", "", "```", *histogram([v * 1000 for v in row["latencies"]]), "```", ""]
    out += ["## Targets", "", "| Target | Measured | Met |", "|---|---|---|"]
    for target, measured, met in results["targets"]:
        out.append(f"| {target} | {measured} | {'yes' if met else '**no**'} |")
    notes = results.get("notes")
    if notes:
        out += ["", "## Notes", "", notes.strip()]
    return "\n".join(out) + "\n"
