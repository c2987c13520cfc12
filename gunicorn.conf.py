"""gunicorn's settings, read from this file by `gunicorn web:app`: workers, logs, Prometheus multiprocess."""

import glob
import os
import shutil
import tempfile

from verification import logs

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads, so a Durable start that waits (?timeout=) or an SMS reply waiting on a duplicate's answer
# holds a thread, not a whole worker, and /readyz still answers.
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "4"))
# Longer than DURABLE_MAX_WAIT_SECONDS, the longest a request may wait on purpose.
timeout = 30
graceful_timeout = 20
# Behind a load balancer that keeps connections open.
keepalive = 5

_development = os.environ.get("DEVELOPMENT_MODE", "").strip().lower() in {"1", "true", "yes", "on"}
logconfig_dict = logs.gunicorn_logconfig(logs.resolve_format(os.environ.get("LOG_FORMAT", ""), _development))

# Each worker process counts in files in PROMETHEUS_MULTIPROC_DIR and /metrics sums them. The variable
# must be set before the app (and prometheus_client) is imported: here in the master, which forks the
# workers that import the app (so no `preload_app`).
_made_metrics_dir = None


def on_starting(server):
    global _made_metrics_dir
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _made_metrics_dir = tempfile.mkdtemp(prefix="prometheus-web-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = _made_metrics_dir
    # Figures of a previous run would be added to this one's.
    for path in glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db")):
        os.remove(path)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _made_metrics_dir:
        shutil.rmtree(_made_metrics_dir, ignore_errors=True)
