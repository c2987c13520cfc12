"""The benchmark's phases, in the order they run; each leaves its figures in `Run.results`."""

from __future__ import annotations

import contextlib
import itertools
import math
import statistics
import time

import redis
from celery import Celery

from bench import measure, report
from bench.load import Load, Result, post
from bench.stack import Stack
from verification.dispatch import CeleryDispatcher
from verification.store import Store

PHONES = (f"+1415{200 + i // 10000:03d}{i % 10000:04d}" for i in itertools.count())
# Five digits are never a 4-digit code: a check with it is always a wrong one, and costs an attempt.
NEVER_RIGHT = {"code": "00000"}


def started(load: Load, count: int) -> list[str]:
    """The ids of `count` new verifications (numbers from PHONES); RuntimeError if any start failed."""
    made = load.run([post("/v1/verifications", {"phone": next(PHONES)}) for _ in range(count)], keep_id=True)
    if set(made.statuses()) != {202}:
        raise RuntimeError(f"starts for the checks: {made.statuses()}")
    return [row[3] for row in made.rows]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(interval)


class Run:
    def __init__(self, args, stack: Stack, load: Load):
        self.args, self.stack, self.load = args, stack, load
        self.state, self.broker = stack.redis(0), stack.redis(1)
        self.verifications: list[tuple[str, str]] = []  # (id, phone) of every start with the long window
        self.results: dict = {"throughput": {}, "round_trips": [], "traces": {}}

    # --- helpers ---

    def starts(self, count: int, port: int | None = None, **kw):
        phones = [next(PHONES) for _ in range(count)]
        result = self.load.run([post("/v1/verifications", {"phone": p}) for p in phones], port=port,
                               keep_id=True, **kw)
        made = [(row[3], phone) for row, phone in zip(result.rows, phones) if row[3]]
        if len(made) < count:
            raise RuntimeError(f"{count - len(made)} of {count} starts failed: {result.statuses()}; "
                               f"see the logs in {self.stack.workdir}")
        self.verifications += made
        return result, made

    def codes_for(self, made):
        twilio = self.stack.twilio
        wait_until(lambda: all(phone in twilio.received for _, phone in made), 120 + len(made) / 20, "SMS")
        return [(vid, twilio.received[phone][1]) for vid, phone in made]

    def drained(self):
        """The worker has sent every SMS and holds every expiry task: the queue is empty (it took them
        all), nothing it holds is unacknowledged (a send is acked once it ran; an expiry task on
        arrival, verification/countdowns.py), and the stand-in has every SMS."""
        return (self.broker.llen("celery") == 0 and self.broker.hlen("unacked") == 0
                and self.stack.twilio.count() >= len(self.verifications))

    def timed(self, name: str, label: str, requests, port: int | None = None, **kw):
        """Time a phase in rounds that alternate with runs of the floor on the same server.

        A shared machine's speed drifts within a run by more than the differences measured here (the floor
        moved 10-20% within one run). So the phase's requests are cut into `--rounds` consecutive parts,
        each sent between two runs of the floor; a part's ratio is its throughput over the mean of the
        floor just before and just after it, and the phase's figure is the median of those ratios.
        """
        rounds = 1 if name == "floor" else max(1, min(self.args.rounds, len(requests)))
        n = len(requests)
        parts = [requests[n * i // rounds:n * (i + 1) // rounds] for i in range(rounds)]
        floor = [post("/bench/floor", {"code": "0000"})] * max(self.args.floor // rounds, 1)
        floors: list[tuple[Result, Cpu]] = []
        runs: list[tuple[Result, Cpu]] = []
        self.stack.pause_worker()
        try:
            for part in parts:
                if name != "floor":
                    floors.append(self.cpu_counted(floor, port=port))
                runs.append(self.cpu_counted(part, keep_id=name.startswith("start"), port=port, **kw))
            if name != "floor":
                floors.append(self.cpu_counted(floor, port=port))
        finally:
            self.stack.resume_worker()
        results = [r for r, _ in runs]
        result = Result([row for r in results for row in r.rows], results[0].began, results[-1].ended)
        seconds = sum(r.seconds for r in results)
        rps = len(result.rows) / seconds if seconds > 0 else 0.0
        cpu = Cpu.sum(c for _, c in runs)
        if name == "floor":
            floor_rps, ratios, cpu_ratios, floor_cpu = rps, [1.0], [1.0], cpu
        else:
            floor_rps = statistics.mean(r.throughput for r, _ in floors)
            floor_cpu = Cpu.sum(c for _, c in floors)
            around = list(zip(runs, floors, floors[1:]))
            ratios = [r.throughput / ((before.throughput + after.throughput) / 2)
                      for (r, _), (before, _), (after, _) in around]
            # Throughput goes as the inverse of CPU per request: the floor's around the round over the round's.
            cpu_ratios = [(before.total() + after.total()) / 2 / c.total()
                          for (_, c), (_, before), (_, after) in around]
        latencies = result.latencies()
        self.results["throughput"][name] = {
            "label": label, "requests": len(requests), "clients": min(self.load.clients, len(requests)),
            "rounds": rounds, "rps": rps, "floor_rps": floor_rps, "ratio": statistics.median(ratios),
            "ratio_min": min(ratios), "ratio_max": max(ratios),
            "cpu": cpu.per_request(), "floor_cpu": floor_cpu.per_request(),
            "cpu_ratio": statistics.median(cpu_ratios), "cpu_ratio_min": min(cpu_ratios),
            "cpu_ratio_max": max(cpu_ratios),
            "p50": report.percentile(latencies, 50),
            "p99": report.percentile(latencies, 99), "statuses": result.statuses(), "latencies": latencies}
        row = self.results["throughput"][name]
        versus = "" if name == "floor" else (
            f"; vs the floor around each of {rounds} rounds: median {row['ratio']:.0%} "
            f"(range {row['ratio_min']:.0%}-{row['ratio_max']:.0%}), floor {floor_rps:.0f} req/s; by CPU per "
            f"request {row['cpu_ratio']:.0%} ({row['cpu_ratio_min']:.0%}-{row['cpu_ratio_max']:.0%})")
        log(f"{label}: {rps:.0f} req/s{versus}; p50 {row['p50'] * 1000:.1f} ms, p99 {row['p99'] * 1000:.1f} ms, "
            f"CPU ms per request (web, Redis, clients) {', '.join(f'{v * 1000:.2f}' for v in row['cpu'])}, "
            f"{row['statuses']}")
        return result

    def cpu_counted(self, requests, port: int | None = None, **kw) -> tuple[Result, "Cpu"]:
        """One load run, and the CPU time it cost the web app, Redis and the clients."""
        web0, redis0 = self.stack.server_cpu(port)
        result = self.load.run(requests, port=port, **kw)
        web1, redis1 = self.stack.server_cpu(port)
        return result, Cpu(len(requests), [web1 - web0, redis1 - redis0, result.client_cpu])

    # --- phases ---

    def warm_up(self):
        log("warming up")
        self.load.run([post("/bench/floor")] * 200)
        _, made = self.starts(2 * self.args.round_trips + 20)
        self.warm = self.codes_for(made)
        self.load.run([post(f"/v1/verifications/{vid}/check", {"code": wrong(code)}) for vid, code in self.warm])

    def round_trips(self, port: int, limits: str, pending: list[tuple[str, str]]):
        n = len(pending)
        r = self.state
        cases = [
            ("Floor: POST /bench/floor", lambda: self.load.run([post("/bench/floor")] * n, clients=1, port=port)),
            ("Start", lambda: self.starts(n, port=port, clients=1)),
            ("Check, wrong code", lambda: self.load.run(
                [post(f"/v1/verifications/{vid}/check", {"code": wrong(code)}) for vid, code in pending],
                clients=1, port=port)),
        ]
        if port == self.stack.port:
            cases.append(("Check, right code", lambda: self.load.run(
                [post(f"/v1/verifications/{vid}/check", {"code": code}) for vid, code in pending],
                clients=1, port=port)))
        self.stack.pause_worker()
        try:
            for label, send in cases:
                counted = measure.per_request(r, send, n)
                self.results["round_trips"].append({"label": label, "limits": limits, **counted})
                log(f"round trips, {label} (limits {limits}): {counted['round_trips']:.2f} {counted['commands']}")
        finally:
            self.stack.resume_worker()

    def traces(self):
        url = f"{self.stack.redis_server.url}/0"
        vid, code = self.warm[-1]
        self.stack.pause_worker()
        try:
            self.results["traces"]["start"] = measure.trace(url, lambda: self.starts(1, clients=1))
            self.results["traces"]["check (wrong code)"] = measure.trace(url, lambda: self.load.run(
                [post(f"/v1/verifications/{vid}/check", {"code": wrong(code)})], clients=1))
        finally:
            self.stack.resume_worker()

    def throughput_and_memory(self):
        a = self.args
        wait_until(self.drained, 300, "the worker to drain")
        self.purge()  # as after, so both RSS readings leave out what the allocator could hand back
        before = measure.memory(self.state, self.broker)
        rss0, redis_rss0 = self.stack.worker_rss(), self.stack.redis_rss()
        self.timed("floor", "Floor: POST /bench/floor", [post("/bench/floor", {"code": "0000"})] * a.floor)
        phones = [next(PHONES) for _ in range(a.starts)]
        result = self.timed("start", "Start: POST /v1/verifications",
                            [post("/v1/verifications", {"phone": p}) for p in phones])
        # Still queued: the worker has only just resumed. One expiry task's message, as Redis stores it.
        one = next((raw for raw in self.broker.lrange("celery", -50, -1) if '"verification.expire"' in raw), "")
        made = [(row[3], phone) for row, phone in zip(result.rows, phones) if row[3]]
        self.verifications += made
        log(f"waiting for the worker to send {len(made)} SMS and hold their expiry tasks")
        wait_until(self.drained, 600 + len(made) / 10, "the worker to drain", interval=0.5)
        # jemalloc keeps the pages of what it freed (the queue the paused worker left) for a while; hand
        # them back so RSS shows what is held. A server built with libc malloc keeps them (see Memory).
        self.purge()
        after = measure.memory(self.state, self.broker)
        rss1, redis_rss1 = self.stack.worker_rss(), self.stack.redis_rss()
        n = len(made)
        sample = made[:200]
        used = after["used"] - before["used"]
        broker = after["broker_unacked"] - before["broker_unacked"]
        shared = after["limits_shared"] - before["limits_shared"]
        self.results["memory"] = {
            "count": n, "per_pending": (used - shared) / n, "broker_per": broker / n,
            "redis_rss_per": (redis_rss1 - redis_rss0 - shared) / n,
            "state_per": (used - shared - broker) / n, "shared_limits": shared,
            "keys": measure.key_sizes(self.state, [v for v, _ in sample], [p for _, p in sample]),
            "message_bytes": len(one.encode()), "held": len(self.verifications),
            "rss_main0": rss0[0], "rss_main1": rss1[0], "rss_all0": rss0[1], "rss_all1": rss1[1],
            "rss_per_task": (rss1[0] - rss0[0]) / max(n, 1)}
        log(f"memory: {self.results['memory']['per_pending']:.0f} B per pending verification "
            f"(broker {broker / n:.0f}); worker RSS "
            f"{rss0[0] / 2**20:.1f} -> {rss1[0] / 2**20:.1f} MiB holding {len(self.verifications)}")
        self.pending = made

    def purge(self):
        with contextlib.suppress(redis.ResponseError):
            self.state.memory_purge()
        time.sleep(1)  # let the last acks and RSS settle

    def checks(self):
        k = min(self.args.checks, len(self.pending))
        chosen = self.codes_for(self.pending[:k])
        wrong_requests = [post(f"/v1/verifications/{vid}/check", {"code": wrong(code)})
                          for _ in range(3) for vid, code in chosen]
        self.timed("check_wrong", "Check, wrong code", wrong_requests)
        self.timed("check_right", "Check, right code", [post(f"/v1/verifications/{vid}/check", {"code": code})
                                                         for vid, code in chosen])

    def without_limits(self, port: int):
        """Start and check again on the second gunicorn, every rate limit off: what the limits cost."""
        n = min(self.args.starts, max(self.args.checks, 1) * 2)
        phones = [next(PHONES) for _ in range(n)]
        result = self.timed("start_off", "Start, rate limits off", [post("/v1/verifications", {"phone": p})
                                                                   for p in phones], port=port)
        made = [(row[3], phone) for row, phone in zip(result.rows, phones) if row[3]]
        self.verifications += made
        # Any code will do for a wrong one: "0000" is right once in 10,000 and then answers 200 all the same.
        self.timed("check_wrong_off", "Check, wrong code, rate limits off",
                   [post(f"/v1/verifications/{vid}/check", {"code": "0000"}) for _ in range(3) for vid, _ in made],
                   port=port)
        wait_until(self.drained, 600 + n / 10, "the worker to drain", interval=0.5)

    def sms_latency(self):
        a = self.args
        result, made = self.starts(a.sms, clients=1, interval=1 / a.sms_rate)
        self.codes_for(made)
        sent = {phone: row[0] for row, (_, phone) in zip(
            [r for r in result.rows if r[3]], made)}
        delays = [self.stack.twilio.received[phone][0] - sent[phone] for _, phone in made]
        self.results["sms"] = {"count": len(delays), "rate": a.sms_rate, "p50": report.percentile(delays, 50),
                               "p99": report.percentile(delays, 99), "max": max(delays)}
        log(f"start -> SMS: p50 {self.results['sms']['p50'] * 1000:.1f} ms, "
            f"p99 {self.results['sms']['p99'] * 1000:.1f} ms")

    def expiry(self):
        """`--expiring` verifications whose deadlines fall within `--spread` seconds of each other."""
        a = self.args
        app = Celery("verification")
        app.config_from_object("celeryconfig")
        app.conf.broker_url = f"{self.stack.redis_server.url}/1"
        store = Store(self.stack.redis(0), 86400)
        dispatcher = CeleryDispatcher(app)
        lead = 5 + a.expiring / 200  # seconds to make them all, with room to spare
        first = time.time() + lead
        ids = []
        for i in range(a.expiring):
            deadline = first + a.spread * i / a.expiring
            window_ms = int((deadline - time.time()) * 1000)
            vid = f"exp{i:05d}{time.time_ns() % 10**9:09d}"
            store.create(vid, next(PHONES), window_ms, 4, 4)
            dispatcher.expire_later(vid, window_ms / 1000)
            ids.append(vid)
        if time.time() > first:
            log("warning: making the expiring verifications took longer than the lead; their deadlines spread")
        from verification import keys

        def statuses():
            pipe = self.state.pipeline(transaction=False)
            for vid in ids:
                pipe.hmget(keys.state(vid), "status", "updated", "expires")
            return pipe.execute()

        wait_until(lambda: all(s[0] != "pending" for s in statuses()) or time.time() > first + a.spread + 60,
                   a.spread + lead + 90, "the expiry phase", interval=0.5)
        rows = statuses()
        lags = [int(u) - int(e) for s, u, e in rows if s == "expired"]
        app.close()
        store.redis.close()
        self.results["expiry"] = {
            "count": len(ids), "expired": len(lags), "spread": a.spread,
            "p50_ms": report.percentile(lags, 50), "p99_ms": report.percentile(lags, 99),
            "max_ms": max(lags) if lags else float("nan")}
        if lags:
            step = max(1, len(lags) // 10)
            log(f"expiry lag by deadline order (every {step}th, ms): {lags[::step]}")
        log(f"expiry lag over {len(lags)}/{len(ids)}: p50 {self.results['expiry']['p50_ms']:.0f} ms, "
            f"p99 {self.results['expiry']['p99_ms']:.0f} ms")


class Cpu:
    """CPU seconds that `requests` requests cost, by where they were spent: the web app, Redis, the clients."""

    def __init__(self, requests: int = 0, seconds=(0.0, 0.0, 0.0)):
        self.requests = requests
        self.seconds = list(seconds)

    @classmethod
    def sum(cls, parts) -> "Cpu":
        total = cls()
        for part in parts:
            total.requests += part.requests
            total.seconds = [a + b for a, b in zip(total.seconds, part.seconds)]
        return total

    def per_request(self) -> tuple[float, float, float]:
        return tuple(s / self.requests for s in self.seconds) if self.requests else (math.nan,) * 3

    def total(self) -> float:
        """CPU seconds per request, all parts."""
        return sum(self.per_request())


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"
