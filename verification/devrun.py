"""`./dev run`: Redis, a Celery worker with beat, and the web app under gunicorn, on local defaults."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from verification.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".dev"


def _remembered(name: str) -> str:
    """A generated secret kept in .dev/, so restarts keep working codes and keys."""
    path = STATE / name
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def main() -> int:
    STATE.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.setdefault("DEVELOPMENT_MODE", "1")
    env.setdefault("API_KEYS", _remembered("api-key"))
    env.setdefault("CODE_HASH_SECRET", _remembered("code-hash-secret"))
    env.setdefault("DEMO_PAGE", "1")
    port = int(env.get("PORT", "8000"))
    env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
    env["PYTHONUNBUFFERED"] = "1"

    redis_server = None
    if "REDIS_URL" not in env:
        redis_server = RedisServer(STATE / "redis", 6379 if _port_free(6379) else None, appendonly=True).start()
        env["REDIS_URL"] = f"{redis_server.url}/0"

    python = sys.executable
    processes = [
        subprocess.Popen([python, "-m", "celery", "-A", "tasks", "worker", "--beat", "-l", "info", "-c", "2",
                          "--schedule", str(STATE / "celerybeat-schedule")], cwd=ROOT, env=env),
        subprocess.Popen([python, "-m", "gunicorn", "web:app", "--bind", f"127.0.0.1:{port}",
                          "--workers", env.get("WEB_CONCURRENCY", "2"), "--access-logfile", "-"],
                         cwd=ROOT, env=env),
    ]
    key = env["API_KEYS"].split(",")[0]
    base = f"http://127.0.0.1:{port}"
    print(f"""
  Verification service on {base}   (Redis: {env['REDIS_URL']}, SMS: {'console' if not env.get('TWILIO_ACCOUNT_SID') else 'twilio'})
  API key: {key}
  Demo page: {base}/demo     API docs: {base}/docs

  curl -s -X POST {base}/v1/verifications -H 'Authorization: Bearer {key}' \\
       -H 'Content-Type: application/json' -d '{{"phone": "+14155550100"}}'
  # the code appears below as "=== SMS to +14155550100 ==="
  curl -s -X POST {base}/v1/verifications/<id>/check -H 'Authorization: Bearer {key}' \\
       -H 'Content-Type: application/json' -d '{{"code": "<code>"}}'

  Ctrl-C stops everything.
""", flush=True)

    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping and all(p.poll() is None for p in processes):
            time.sleep(0.5)
    finally:
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in processes:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        if redis_server:
            redis_server.stop()
    return 0 if stopping else 1


if __name__ == "__main__":
    sys.exit(main())
