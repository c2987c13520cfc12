"""Verification state in Redis: the Lua scripts and the one wrapper that reads their answers."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from importlib import resources

import redis
from redis.connection import Encoder

from verification import keys, metrics
from verification.model import Verification

try:
    import hiredis
except ImportError:  # pragma: no cover - a dependency (redis[hiredis])
    hiredis = None

# A stored event's field: e<n> (events.lua).
_EVENT = re.compile(r"e[0-9]+")
# An event's stored time below this (ms, about 3 years) counts from the record's `created`; above, from
# 1970, as events were stored before (those are past 1.7 * 10^12).
_SINCE_CREATED_BELOW = 10**11

_SCRIPTS = ("create", "check", "finish", "claim_send", "record_send", "record_delivery", "purge")
# The shared functions (limits.lua, events.lua) a script begins with.
_PRELUDES = {"create": ("limits",), "check": ("limits", "events"), "finish": ("events",),
             "record_send": ("events",), "record_delivery": ("events",)}


def _read(name: str) -> str:
    return resources.files("verification").joinpath("lua", f"{name}.lua").read_text()


def script_source(name: str) -> str:
    """A script's text as Redis runs it: its preludes, then the script."""
    return "".join(_read(part) for part in (*_PRELUDES.get(name, ()), name))


class _HiredisPacker:
    """Packs a command into RESP in one call of hiredis's C packer, as redis-py 7 did with hiredis.

    redis-py 8 (8.2) runs every argument through its Python `Encoder.encode` before hiredis packs them:
    about 6,000 instructions an argument, which a script call pays for each key and argument (13 for a
    check, 35 for a start). Arguments of exactly str, bytes, int or float, all the service sends, go to
    hiredis as they are: it writes them as redis-py's encoder does with its default encoding (UTF-8,
    strict) (tests/test_packer.py compares the bytes). A command with any other argument goes through
    redis-py's own Encoder first, so it is sent or refused as redis-py would. (An int of more than 4,300
    digits would crash hiredis, where redis-py raises ValueError; Python reads none from text, so no
    request can give one.)
    """

    def pack(self, *args) -> list[bytes]:
        if not _PACKED_AS_IS.issuperset(map(type, args)):
            args = tuple(_as_redis_py_encodes(arg) for arg in args)
        # A command name of two words ("SCRIPT LOAD") goes as two arguments, as redis-py sends it.
        if isinstance(args[0], str):
            args = (*args[0].encode().split(), *args[1:])
        elif b" " in args[0]:
            args = (*args[0].split(), *args[1:])
        return [hiredis.pack_command(args)]


_PACKED_AS_IS = frozenset((str, bytes, int, float))


# redis-py's own Encoder, with its defaults: what it makes of an argument, or its DataError.
_encode = Encoder("utf-8", "strict", False).encode


def _as_redis_py_encodes(arg):
    """An argument as redis-py's `Encoder.encode` makes it, in bytes hiredis takes as they are: it takes no
    bytearray, and would send a strided memoryview's whole buffer."""
    encoded = _encode(arg)
    return bytes(encoded) if isinstance(encoded, (bytearray, memoryview)) else encoded


def command_packer() -> _HiredisPacker | None:
    """For a UTF-8 client's `command_packer=`: hiredis's packer, or None (redis-py's own) without hiredis."""
    return _HiredisPacker() if hiredis is not None else None


# A rate limit as the scripts take one: (Redis key, amount, window in seconds).
Limit = tuple[str, int, int]


@dataclass(frozen=True)
class Enqueue:
    """Broker writes for create.lua to make along with the start, when the broker is on the state's server.

    `commands` are kombu's own final Redis commands for the start's task messages and task-sent events
    (dispatch.py), each `(lpush | publish, key, payload)`, run in the broker's database `db`.
    """

    db: int
    commands: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True)
class Created:
    created_ms: int
    expires_ms: int
    previous_id: str | None


@dataclass(frozen=True)
class CheckOutcome:
    outcome: str  # approved | wrong | expired | not_pending | not_found
    verification: Verification | None  # as it is after the check


@dataclass(frozen=True)
class FinishOutcome:
    outcome: str  # done | not_due | not_pending | not_found | expired (past the deadline instead)
    verification: Verification | None  # as it is after
    ms: int  # when it was done, or for not_due the time left


@dataclass(frozen=True)
class Claim:
    """The answer of claim_send: the right to send, with where to; or why not."""

    claimed: bool
    phone: str = ""
    expires_ms: int = 0
    skipped_because: str = ""  # e.g. "approved/queued", "past_deadline/queued", "not_found/"


class IdTaken(Exception):
    """A verification with this id exists already."""


class LimitRefused(Exception):
    """A rate limit a script was given had no slot left; the script changed nothing."""

    def __init__(self, position: int, retry_after: int):
        super().__init__(position, retry_after)
        self.position = position  # of the first refusing one, 0-based, in the list of limits given
        self.retry_after = retry_after  # whole seconds until every refusing one has a free slot


class Store:
    """Reads and changes verifications; every change is one Lua script, so it is atomic."""

    def __init__(self, connection: redis.Redis, retention_seconds: int):
        self.redis = connection
        self.retention = retention_seconds
        self._scripts = {name: connection.register_script(script_source(name)) for name in _SCRIPTS}

    def _run(self, name: str, keys_: list[str], args: list) -> list:
        return [_text(item) for item in self._eval(name, keys_, args)]

    def _eval(self, name: str, keys_: list[str], args: list):
        script = self._scripts[name]
        # EVALSHA itself: redis-py's Script.__call__ adds about 34,000 instructions a call (two imports, two
        # isinstance tests against its Protocol-based pipeline classes, copies of the keys and arguments),
        # 3% of a check. Its own recovery is kept for a Redis that lost its script cache (a restart):
        # NOSCRIPT means the script did not run, so running it through Script once more counts once.
        try:
            return self.redis.evalsha(script.sha, len(keys_), *keys_, *args)
        except redis.exceptions.NoScriptError:
            return script(keys=keys_, args=args)

    def load_scripts(self) -> None:
        """Make sure every script is in Redis's cache (readiness): one SCRIPT EXISTS, a load for each missing."""
        scripts = list(self._scripts.values())
        for script, present in zip(scripts, self.redis.script_exists(*(s.sha for s in scripts))):
            if not present:
                script.sha = self.redis.script_load(script.script)

    def create(self, verification_id: str, phone: str, window_ms: int, max_attempts: int,
               code_length: int, limits: tuple[Limit, ...] = (), enqueue: Enqueue | None = None) -> Created:
        """Store a new verification, taking a slot of each rate limit; IdTaken or LimitRefused if not.

        With `enqueue`, its messages reach the broker in the same atomic step, and only if the start does.
        """
        queued = [enqueue.db, *(part for command in enqueue.commands for part in command)] if enqueue else []
        reply = self._run(
            "create",
            [keys.state(verification_id), keys.phone(phone), keys.DEADLINES, keys.CREATED,
             *(key for key, _, _ in limits)],
            [verification_id, phone, window_ms, max_attempts, code_length, self.retention,
             *_limit_args(limits), *queued],
        )
        if reply[0] == "exists":
            raise IdTaken(verification_id)
        _raise_if_refused(reply)
        metrics.started()
        return Created(int(reply[1]), int(reply[2]), reply[3] or None)

    def get(self, verification_id: str) -> Verification | None:
        h = self.redis.hgetall(keys.state(verification_id))
        if not h:
            return None
        return _verification(verification_id, [_text(item) for pair in h.items() for item in pair])

    def newest_for(self, phone: str) -> str | None:
        """The id of the newest verification started for a number (E.164), while it is kept."""
        index = _text(self.redis.get(keys.phone(phone))) or ""  # "<id> <ms> <ms>...": see keys.phone
        return index.split(" ", 1)[0] or None

    def events(self, verification_id: str) -> list[dict]:
        """What happened to a verification, oldest first (events.lua keeps them in its hash).

        The first, `started`, is its `created` time rather than a stored event; a record stored before
        that was so holds it as its e1. Times are ms since 1970 here; stored, they count from `created`
        (from 1970 in records stored before).
        """
        h = {_text(k): v for k, v in self.redis.hgetall(keys.state(verification_id)).items()}
        if "created" not in h:
            return []
        created = int(h["created"])
        stored = [json.loads(h[field]) for field in sorted((f for f in h if _EVENT.fullmatch(f)),
                                                          key=lambda f: int(f[1:]))]
        for event in stored:
            if event["t"] < _SINCE_CREATED_BELOW:
                event["t"] += created
        if stored and stored[0]["e"] == "started":
            return stored
        return [{"t": created, "e": "started"}, *stored]

    def check(self, verification_id: str, code_hash: str, channel: str,
              limits: tuple[Limit, ...] = (), of_phone: str = "") -> CheckOutcome:
        """Compare and spend an attempt, after taking a slot of each rate limit (LimitRefused if none).

        With `of_phone`, a verification for another number is `not_found`.
        """
        reply = self._run(
            "check",
            [keys.state(verification_id), keys.DEADLINES, *(key for key, _, _ in limits)],
            [code_hash, self.retention, channel, verification_id, of_phone, *_limit_args(limits)],
        )
        _raise_if_refused(reply)
        result = CheckOutcome(reply[0], _verification(verification_id, reply[1:]))
        _count_check(result, channel)
        return result

    def finish(self, verification_id: str, final: str, reason: str = "", of_phone: str = "",
               **fields) -> FinishOutcome:
        """Move a pending verification to `final`; with `of_phone`, one for another number is `not_found`."""
        extra = [item for pair in fields.items() for item in pair]
        reply = self._run(
            "finish",
            [keys.state(verification_id), keys.DEADLINES],
            [final, self.retention, verification_id, reason, of_phone, *extra],
        )
        if reply[0] == "done":
            metrics.finished(final)
        elif reply[0] == "expired":
            metrics.finished("expired")
        return FinishOutcome(reply[0], _verification(verification_id, reply[2:]), int(reply[1]))

    def claim_send(self, verification_id: str, code_hash: str) -> Claim:
        reply = self._run("claim_send", [keys.state(verification_id)], [code_hash])
        if reply[0] == "claimed":
            return Claim(True, phone=reply[1], expires_ms=int(reply[2]))
        return Claim(False, skipped_because=f"{reply[1]}/{reply[2]}")

    def record_send(self, verification_id: str, outcome: str, detail: str) -> bool:
        """Record Twilio's answer to a claimed send; False when the ledger was not `sending`."""
        reply = self._run("record_send", [keys.state(verification_id)], [outcome, detail])
        return reply[0] == "recorded"

    def record_delivery(self, verification_id: str, status: str, message_sid: str,
                        error_code: str = "") -> str:
        """Twilio's delivery status for the challenge SMS.

        Returns recorded | stale | other_message | not_found | unknown_status.
        """
        return self._run("record_delivery", [keys.state(verification_id)],
                         [status, message_sid, error_code])[0]

    def purge(self, verification_id: str, created_ms: int | None = None) -> bool:
        """Delete a verification and its index entries; with `created_ms`, only the one created then."""
        phone = _text(self.redis.hget(keys.state(verification_id), "phone")) or ""
        reply = self._eval("purge", [keys.state(verification_id), keys.phone(phone), keys.DEADLINES, keys.CREATED],
                           [verification_id, "" if created_ms is None else created_ms])
        return int(reply) == 1

    def created_between(self, min_ms: float, max_ms: float, offset: int, count: int) -> list[tuple[str, int]]:
        """(id, created ms) from the creation index, oldest first; ids may outlive their records."""
        rows = self.redis.zrangebyscore(keys.CREATED, min_ms, max_ms, start=offset, num=count, withscores=True)
        return [(_text(member), int(score)) for member, score in rows]

    def get_many(self, verification_ids: list[str]) -> list[Verification | None]:
        pipe = self.redis.pipeline(transaction=False)
        for verification_id in verification_ids:
            pipe.hgetall(keys.state(verification_id))
        return [
            _verification(verification_id, [_text(item) for pair in h.items() for item in pair])
            for verification_id, h in zip(verification_ids, pipe.execute())
        ]

    def forget_created_before(self, ms: int) -> int:
        """Drop creation-index entries of records that have vanished by their TTL."""
        return self.redis.zremrangebyscore(keys.CREATED, 0, ms)

    def overdue(self, limit: int = 1000) -> list[str]:
        """Ids of pending verifications whose deadline has passed by this host's clock."""
        now_ms = int(time.time() * 1000)
        return [_text(i) for i in self.redis.zrangebyscore(keys.DEADLINES, 0, now_ms, start=0, num=limit)]


def _limit_args(limits: tuple[Limit, ...]) -> list[int]:
    return [value for _, amount, window in limits for value in (amount, window)]


def _raise_if_refused(reply: list) -> None:
    if reply[0] == "rate_limited":
        raise LimitRefused(int(reply[1]) - 1, int(reply[2]))


def _count_check(result: CheckOutcome, channel: str) -> None:
    # Counted here, where the scripts answer, so every path that ends a verification is counted once.
    metrics.checked(result.outcome, channel)
    verification = result.verification
    if result.outcome in ("approved", "wrong", "expired") and verification and verification.is_final:
        metrics.finished(verification.status)
        if verification.status == "approved":
            metrics.approved_after((verification.updated_ms - verification.created_ms) / 1000)


def _verification(verification_id: str, flat: list) -> Verification | None:
    if not flat:
        return None
    return Verification.from_hash(verification_id, dict(zip(flat[::2], flat[1::2])))


def _text(value):
    return value.decode() if isinstance(value, bytes) else value
