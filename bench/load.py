"""The load: client processes that send a bounded list of HTTP requests over loopback and time each one."""

from __future__ import annotations

import http.client
import json
import multiprocessing
import time
from dataclasses import dataclass


@dataclass
class Result:
    """One phase: every request's (sent at, latency s, status, id from the answer or None), and the CPU
    time the client processes spent sending them."""

    rows: list[tuple[float, float, int, str | None]]
    began: float
    ended: float
    client_cpu: float = 0.0

    @property
    def seconds(self) -> float:
        return self.ended - self.began

    @property
    def throughput(self) -> float:
        return len(self.rows) / self.seconds if self.seconds > 0 else 0.0

    def latencies(self) -> list[float]:
        return [row[1] for row in self.rows]

    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for row in self.rows:
            counts[row[2]] = counts.get(row[2], 0) + 1
        return counts


def _client(job) -> tuple[list, float, float, float]:
    """One client: its requests in order on one keep-alive connection (reopened when the server closes it).
    Returns the rows, when it began and ended, and its CPU time in between."""
    port, headers, requests, start_at, interval, keep_id = job
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    rows = []
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    began = time.time()
    cpu = time.process_time()
    for index, (method, path, body) in enumerate(requests):
        if interval:
            wait = began + index * interval - time.time()
            if wait > 0:
                time.sleep(wait)
        sent = time.time()
        t0 = time.perf_counter()
        for attempt in (1, 2):
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                connection.close()  # a keep-alive connection the server had closed: once more, anew
                if attempt == 2:
                    raise
        latency = time.perf_counter() - t0
        found = json.loads(data).get("id") if keep_id and response.status < 300 else None
        rows.append((sent, latency, response.status, found))
    ended = time.time()
    cpu = time.process_time() - cpu
    connection.close()
    return rows, began, ended, cpu


class Load:
    """A pool of `clients` processes, started once and reused by every phase."""

    def __init__(self, port: int, clients: int, api_key: str):
        self.port = port
        self.clients = clients
        self.headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
        self.pool = multiprocessing.get_context("spawn").Pool(clients)

    def run(self, requests: list[tuple[str, str, bytes]], *, port: int | None = None, clients: int | None = None,
            interval: float = 0.0, keep_id: bool = False) -> Result:
        """Send `requests`, spread round robin over the clients; results in the order of `requests`."""
        clients = min(clients or self.clients, len(requests)) or 1
        start_at = time.time() + 0.3
        jobs = [(port or self.port, self.headers, requests[i::clients], start_at, interval * clients, keep_id)
                for i in range(clients)]
        outcomes = self.pool.map(_client, jobs, chunksize=1)
        rows: list = [None] * len(requests)
        for i, (client_rows, *_) in enumerate(outcomes):
            rows[i::clients] = client_rows
        return Result(rows, min(o[1] for o in outcomes), max(o[2] for o in outcomes), sum(o[3] for o in outcomes))

    def close(self) -> None:
        self.pool.close()
        self.pool.join()


def post(path: str, body: dict | None = None) -> tuple[str, str, bytes]:
    return "POST", path, json.dumps(body or {}).encode()
