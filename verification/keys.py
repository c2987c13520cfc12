"""Every Redis key name the service uses, in one place."""

PREFIX = "verif"

# Sorted set of pending verification ids scored by deadline (ms); the sweep reads it.
DEADLINES = f"{PREFIX}:deadlines"
# Sorted set of every verification id scored by creation time (ms), for listing and purging.
CREATED = f"{PREFIX}:created"

# Hash read by the benchmark's floor route (verification/floor.py); never written by the service.
BENCH_FLOOR = f"{PREFIX}:bench:floor"

# Rate-limit keys are named as the `limits` library names them, under its own prefix:
# `LIMITS:LIMITER/<limit name>/<who>/<amount>/<multiples>/<granularity>` (lists of hit times); but the
# limits per phone number are kept in the number's own index (`phone`, below).
LIMITS_PREFIX = "LIMITS"


def state(verification_id: str) -> str:
    """Hash: the verification's fields (status, phone, hash of the code, times...) and its events."""
    return f"{PREFIX}:{{{verification_id}}}:state"


def phone(e164: str) -> str:
    """String: the id of the newest verification started for a number, then the times (ms) of the starts its
    rate limits count, newest first: `<id> <ms> <ms>...` (create.lua). One key instead of two saves
    about 250 bytes a pending verification (docs/benchmarks.md)."""
    return f"{PREFIX}:phone:{e164}"


def inbound(message_sid: str) -> str:
    """String: the reply already given to an inbound SMS, so a retry counts once."""
    return f"{PREFIX}:inbound:{message_sid}"

