"""Celery's settings, read from the environment (see `.env.example`)."""

import os

_redis_url = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
_window = int(os.environ.get("VERIFICATION_WINDOW_SECONDS", "90"))

broker_url = os.environ.get("CELERY_BROKER_URL", _redis_url)
# No result backend: callers never wait on a task, and results are one more place to leak from.
result_backend = None
task_ignore_result = True

task_serializer = "json"
accept_content = ["json"]
timezone = "UTC"
enable_utc = True

# Flower shows tasks the moment they are sent, and what the workers do with them.
worker_send_task_events = True
task_send_sent_event = True

# A send is acknowledged only once it ran, so a worker that dies holding it hands it back; the
# send ledger in Redis (queued -> sending -> sent) keeps a redelivered task from sending twice.
task_acks_late = True
# A child killed mid-task (OOM, SIGKILL) also gives its message back: the ledger decides.
task_reject_on_worker_lost = True
# Late acks and prefetching do not mix: take one message at a time per process.
worker_prefetch_multiplier = 1

# Unacked messages (an expiry waiting for its countdown, a send whose worker died) return to the
# queue after this many seconds. It must exceed the verification window, or every countdown would
# be redelivered while it waits; a redelivered expiry or send is harmless, only wasted.
broker_transport_options = {
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", str(max(300, 2 * _window)))),
}
# Keep trying to reach Redis while it is down, forever, instead of exiting.
broker_connection_retry_on_startup = True
broker_connection_max_retries = None

worker_hijack_root_logger = False
