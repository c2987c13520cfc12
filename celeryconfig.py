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

# A task is acknowledged only once it ran, so a worker that dies holding one hands it back. A send
# may then run twice; the send ledger in Redis (queued -> sending -> sent) makes the second run skip
# once the first may have reached Twilio: at most one accepted SMS per verification.
task_acks_late = True
# A pool child killed mid-task (OOM, SIGKILL of the child) gives its message back at once, and the
# ledger decides. Without this, late acks would still ack a task whose process vanished.
task_reject_on_worker_lost = True
# Late acks and prefetching do not mix: a worker holds about as many messages as it has processes
# (plus the send retries it waits on; an expiry countdown is acknowledged on arrival and takes no
# slot, verification/countdowns.py), so a hard-killed worker strands as few sends as possible.
worker_prefetch_multiplier = 1
# On a lost broker connection, let running tasks finish rather than cancel them: a send halfway
# through its Twilio request should record its outcome. (Celery warns that 6.0 will change the
# default; this keeps our choice either way.)
worker_cancel_long_running_tasks_on_connection_loss = False

# Unacked messages (a send waiting for its retry countdown, a send whose worker died hard) return
# to the queue after this many seconds. It must exceed the verification window (which also bounds a
# send's retry countdown), or every retry would be redelivered while it waits: harmless, as sends
# are idempotent, but wasted. The price: a send stranded by SIGKILL comes back after the window,
# when it can only skip; that verification expires (no SMS, never two). A warm shutdown (SIGTERM)
# hands its messages back at once instead. Expiry countdowns are not kept here at all
# (verification/countdowns.py).
broker_transport_options = {
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", str(max(300, 2 * _window)))),
    # A Redis that vanishes without closing the connection (failover, a dropped NAT entry) must not
    # hang a publish from the web app for ever (kombu's BRPOP waits 1 s at a time, well inside it).
    "socket_timeout": 5,
    "socket_connect_timeout": 2,
    # Message bodies are JSON text: store them as they are, not base64 (4/3 the size) in the JSON.
    "body_encoding": None,
}
# Keep trying to reach Redis while it is down, forever, instead of exiting.
broker_connection_retry_on_startup = True
broker_connection_max_retries = None

# The sweep: expiry that a countdown task missed. Expiry countdowns live only in the worker's memory
# once fetched (verification/countdowns.py); a shutdown or a reconnect hands them back, and a worker
# killed hard loses them. The sweep marks every pending verification past its deadline `expired`
# (verification/challenge.py), so status, metrics and callbacks converge within one interval. Run
# beat once (`celery -A tasks worker --beat`, or a `celery -A tasks beat` process).
_sweep_seconds = float(os.environ.get("VERIFICATION_SWEEP_SECONDS", "20"))
beat_schedule = {
    "sweep-overdue-verifications": {
        "task": "verification.sweep",
        "schedule": _sweep_seconds,
        # Sweeps sent while no worker runs do not pile up: one that waited three intervals is
        # dropped, as a later one does the same work.
        "options": {"expires": 3 * _sweep_seconds},
    },
}

worker_hijack_root_logger = False
