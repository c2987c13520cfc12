"""What the benchmark runs against: Redis, the Twilio stand-in, gunicorn and a Celery worker."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import redis

from bench.load import Load
from bench.twilio import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, TwilioStandIn
from verification.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "bench-api-key-0123456789abcdef"
# High enough that no limit refuses the benchmark's traffic, so the limits' cost is measured, not their refusals.
OPEN_LIMITS = {
    "LIMIT_STARTS_PER_API_KEY": "100000/minute",
    "LIMIT_STARTS_PER_IP": "100000/minute",
    "LIMIT_SMS_GLOBAL": "100000/minute",
    "LIMIT_CHECKS_PER_IP": "100000/minute",
}
NO_LIMITS = {name: "off" for name in (*OPEN_LIMITS, "LIMIT_STARTS_PER_PHONE")}


def app_env(redis_url: str, window: int, limits: bool, **overrides) -> dict:
    """The environment the benchmark runs the service in: this one without the service's own settings,
    then the benchmark's (the floor route on, limits on with ceilings no run reaches, or off)."""
    # Nor the caller's log format, development mode or metrics directory: each gunicorn makes its own
    # directory (gunicorn.conf.py), and the figures are for the production set-up, JSON lines included.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VERIFICATION_", "TWILIO_", "CELERY_", "LIMIT_", "REDIS_"))
           and k not in ("LOG_FORMAT", "DEVELOPMENT_MODE", "PROMETHEUS_MULTIPROC_DIR")}
    env.update({
        "LOG_FORMAT": "json",
        "REDIS_URL": f"{redis_url}/0",
        # State in DB 0 and the broker in DB 1, so their memory can be told apart.
        "CELERY_BROKER_URL": f"{redis_url}/1",
        "CODE_HASH_SECRET": "bench-code-hash-secret", "API_KEYS": API_KEY,
        "VERIFICATION_WINDOW_SECONDS": str(window), "BENCH_FLOOR_ROUTE": "1",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(OPEN_LIMITS if limits else NO_LIMITS)
    env.update(overrides)
    return env


class Stack:
    def __init__(self, workdir: Path, *, web_workers: int, web_class: str, web_threads: int,
                 worker_concurrency: int, window: int, limits: bool):
        self.workdir = workdir
        self.web_args = ["-w", str(web_workers), "-k", web_class, "--threads", str(web_threads)]
        self.worker_concurrency = worker_concurrency
        self.redis_server = RedisServer(workdir / "redis")
        self.twilio = TwilioStandIn()
        self.port = free_port()
        self.window = window
        self.limits = limits
        self.worker: subprocess.Popen | None = None
        self.web: dict[int, subprocess.Popen] = {}  # gunicorn by port: the stack's own, and any started after

    # --- lifecycle ---

    def env(self, **overrides) -> dict:
        return app_env(self.redis_server.url, self.window, self.limits, SMS_BACKEND="twilio",
                       TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN, TWILIO_PHONE_NUMBER=FROM_NUMBER,
                       TWILIO_API_BASE_URL=self.twilio.url, **overrides)

    def start(self) -> "Stack":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.redis_server.start()
        self.twilio.start()
        self.start_web(self.port, self.env())
        self.worker = self._start_worker()
        return self

    def start_web(self, port: int, env: dict, wrap: Sequence[str] = (), app: str = "web:app") -> subprocess.Popen:
        """A gunicorn serving `app` on `port`, once it answers; `wrap` is a command it runs under (a profiler)."""
        with open(self.workdir / f"web-{port}.log", "ab") as log:
            process = subprocess.Popen(
                [*wrap, sys.executable, "-m", "gunicorn", app, "-b", f"127.0.0.1:{port}", *self.web_args,
                 "--backlog", "2048"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.web[port] = process
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.workdir}/web-{port}.log")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    return process
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("gunicorn not ready in 30 s")

    def _start_worker(self) -> subprocess.Popen:
        log_path = self.workdir / "worker.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-l", "info", "-P", "prefork",
                 "-c", str(self.worker_concurrency), "-n", "bench@%h", "--without-mingle", "--without-gossip"],
                cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"worker exited; see {log_path}")
            if " ready." in log_path.read_text(errors="replace"):
                return process
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready in 60 s; see {log_path}")

    def stop(self) -> None:
        for process in self.web.values():
            if process.poll() is None:
                process.terminate()
                process.wait(15)
        if self.worker and self.worker.poll() is None:
            self.resume_worker()
            self.worker.terminate()
            try:
                self.worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.worker.pid, signal.SIGKILL)
                self.worker.wait()
        self.twilio.stop()
        self.redis_server.stop()

    # --- the worker, paused while the web tier is timed so both get the same CPUs ---

    def pause_worker(self) -> None:
        os.killpg(self.worker.pid, signal.SIGSTOP)

    def resume_worker(self) -> None:
        os.killpg(self.worker.pid, signal.SIGCONT)

    def worker_rss(self) -> tuple[int, int]:
        """(RSS of the worker's main process, RSS of it and its pool processes), in bytes."""
        pids = [self.worker.pid, *_children(self.worker.pid)]
        sizes = [_rss(pid) for pid in pids]
        return sizes[0], sum(sizes)

    # --- CPU ---

    def server_cpu(self, port: int | None = None) -> tuple[float, float]:
        """CPU seconds spent so far by the gunicorn on `port` (master and workers) and by Redis."""
        gunicorn = self.web[port or self.port].pid
        return (sum(_cpu(pid) for pid in [gunicorn, *_children(gunicorn)]),
                _cpu(self.redis_server.process.pid))

    # --- Redis ---

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def redis_rss(self) -> int:
        """RSS of the Redis server process, in bytes: what it holds, with its allocator's own overhead."""
        return _rss(self.redis_server.process.pid)

    def redis(self, db: int = 0) -> redis.Redis:
        return redis.Redis.from_url(f"{self.redis_server.url}/{db}", decode_responses=True)


@contextlib.contextmanager
def analysis_stack(workdir: Path, clients: int):
    """(stack, load) as the analysis tools use them (bench.profile, bench.ablate): gunicorn `-w 2 -k sync`,
    rate limits on with ceilings no run reaches, `clients` load processes, and the worker paused, since it
    would take the CPUs the measured gunicorns run on. Stopped on the way out, started gunicorns too."""
    stack = Stack(workdir, web_workers=2, web_class="sync", web_threads=1, worker_concurrency=1, window=900,
                  limits=True)
    try:
        stack.start()
        load = Load(stack.port, clients, API_KEY)
        try:
            stack.pause_worker()
            yield stack, load
        finally:
            load.close()
    finally:
        stack.stop()


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *_children(int(child))]
    return found


def _cpu(pid: int) -> float:
    """Seconds a process has run on a CPU, all its threads, those that ended included: the kernel's CPU
    clock of that process (Linux's clock id for a pid), in ns, where /proc's utime and stime count 10 ms
    ticks, coarse for a floor run of one second."""
    return time.clock_gettime((~pid << 3) | 2)


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
