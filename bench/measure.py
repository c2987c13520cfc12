"""Server-side counts: Redis round trips and commands per request, a command trace, memory by owner."""

from __future__ import annotations

import threading
import time

import redis


def snapshot(r: redis.Redis) -> tuple[int, dict[str, int]]:
    """(reads processed, calls per command), from one INFO call."""
    info = r.info("all")
    calls = {key[len("cmdstat_"):]: value["calls"] for key, value in info.items() if key.startswith("cmdstat_")}
    return int(info["total_reads_processed"]), calls


def per_request(r: redis.Redis, send, count: int) -> dict:
    """Round trips and commands per request while `send()` sends `count` requests, nothing else talking.

    A round trip is one read of a client's socket by Redis (INFO stats `total_reads_processed`): a
    pipeline arrives in one read however many commands it holds. The one INFO call that ends the
    window is subtracted. Commands come from INFO commandstats (commands inside Lua are counted too).
    """
    reads0, calls0 = snapshot(r)
    send()
    reads1, calls1 = snapshot(r)
    commands = {name: (calls1[name] - calls0.get(name, 0)) / count for name in calls1
                if name != "info" and calls1[name] != calls0.get(name, 0)}
    return {"round_trips": (reads1 - reads0 - 1) / count, "commands": dict(sorted(commands.items()))}


def trace(url: str, send) -> list[str]:
    """The commands Redis ran while `send()` ran, from MONITOR: `client command key`."""
    lines: list[str] = []
    ready = threading.Event()
    monitor_client = redis.Redis.from_url(url)
    marker = redis.Redis.from_url(url)

    def watch():
        with monitor_client.monitor() as monitor:
            ready.set()
            for entry in monitor.listen():
                lines.append(entry)
                if entry["command"] == "ECHO bench-trace-end":
                    return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    ready.wait(5)
    time.sleep(0.2)
    marker.echo("bench-trace-start")
    send()
    marker.echo("bench-trace-end")
    thread.join(10)
    monitor_client.close()
    marker.close()
    out, on, repeats = [], False, 0
    for entry in lines:
        if entry["command"].startswith("ECHO bench-trace"):
            on = entry["command"] == "ECHO bench-trace-start"
            continue
        if on:
            words = entry["command"].split(" ")
            who = "lua" if entry.get("client_type") == "lua" else f"db{entry['db']}:{entry['client_port']}"
            line = f"{who:>12}  {' '.join(w[:64] for w in words[:2])}"
            if out and out[-1].split("  (x")[0] == line:
                repeats += 1
                out[-1] = f"{line}  (x{repeats})"
            else:
                repeats = 1
                out.append(line)
    return out


def memory(state: redis.Redis, broker: redis.Redis) -> dict:
    """used_memory, and what the broker's unacked hash and index hold, in bytes."""
    pipe = broker.pipeline(transaction=False)
    pipe.memory_usage("unacked", samples=0)
    pipe.memory_usage("unacked_index", samples=0)
    pipe.llen("celery")
    unacked, index, queued = pipe.execute()
    # The limits shared by every start (per key, per IP, global); a number's own is in its index.
    keys = list(state.scan_iter(match="LIMITS*", count=1000))
    pipe = state.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    limits_shared = sum(size or 0 for size in pipe.execute())
    return {"used": int(state.info("memory")["used_memory"]), "broker_unacked": (unacked or 0) + (index or 0),
            "queued": queued, "limits_shared": limits_shared}


def key_sizes(state: redis.Redis, ids: list[str], phones: list[str]) -> dict:
    """Average MEMORY USAGE of one verification's own keys, over the given ones."""
    from verification import keys

    pipe = state.pipeline(transaction=False)
    for verification_id, phone in zip(ids, phones):
        pipe.memory_usage(keys.state(verification_id), samples=0)
        pipe.memory_usage(keys.phone(phone), samples=0)
    sizes = pipe.execute()
    n = max(len(ids), 1)
    return {"state": sum(s or 0 for s in sizes[0::2]) / n, "phone": sum(s or 0 for s in sizes[1::2]) / n}
