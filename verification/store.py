"""Verification state in Redis: the Lua scripts and the one wrapper that reads their answers."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib import resources

import redis

from verification import keys
from verification.model import Verification

_SCRIPTS = ("create", "check", "finish", "claim_send", "record_send")


def _load(name: str) -> str:
    return resources.files("verification").joinpath("lua", f"{name}.lua").read_text()


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
    outcome: str  # done | not_due | not_pending | not_found
    verification: Verification | None  # as it is after
    ms: int  # when it was done, or for not_due the time left


class IdTaken(Exception):
    """A verification with this id exists already."""


class Store:
    """Reads and changes verifications; every change is one Lua script, so it is atomic."""

    def __init__(self, connection: redis.Redis, retention_seconds: int):
        self.redis = connection
        self.retention = retention_seconds
        self._scripts = {name: connection.register_script(_load(name)) for name in _SCRIPTS}

    def _run(self, name: str, keys_: list[str], args: list) -> list:
        reply = self._scripts[name](keys=keys_, args=args)
        return [_text(item) for item in reply]

    def load_scripts(self) -> None:
        """Load every script now (readiness), instead of on first use."""
        for script in self._scripts.values():
            script.sha = self.redis.script_load(script.script)

    def create(self, verification_id: str, phone: str, window_ms: int, max_attempts: int,
               code_length: int) -> Created:
        reply = self._run(
            "create",
            [*keys.verification_keys(verification_id), keys.phone(phone), keys.DEADLINES, keys.CREATED],
            [verification_id, phone, window_ms, max_attempts, code_length, self.retention],
        )
        if reply[0] == "exists":
            raise IdTaken(verification_id)
        return Created(int(reply[1]), int(reply[2]), reply[3] or None)

    def get(self, verification_id: str) -> Verification | None:
        h = self.redis.hgetall(keys.state(verification_id))
        if not h:
            return None
        return _verification(verification_id, [_text(item) for pair in h.items() for item in pair])

    def events(self, verification_id: str) -> list[dict]:
        return [json.loads(item) for item in self.redis.lrange(keys.events(verification_id), 0, -1)]

    def check(self, verification_id: str, code_hash: str, channel: str) -> CheckOutcome:
        reply = self._run(
            "check",
            [*keys.verification_keys(verification_id), keys.DEADLINES],
            [code_hash, self.retention, channel, verification_id],
        )
        return CheckOutcome(reply[0], _verification(verification_id, reply[1:]))

    def finish(self, verification_id: str, final: str, reason: str = "", **fields) -> FinishOutcome:
        extra = [item for pair in fields.items() for item in pair]
        reply = self._run(
            "finish",
            [*keys.verification_keys(verification_id), keys.DEADLINES],
            [final, self.retention, verification_id, reason, *extra],
        )
        return FinishOutcome(reply[0], _verification(verification_id, reply[2:]), int(reply[1]))

    def claim_send(self, verification_id: str, code_hash: str) -> list[str]:
        return self._run("claim_send", keys.verification_keys(verification_id), [code_hash])

    def record_send(self, verification_id: str, outcome: str, detail: str) -> list[str]:
        return self._run("record_send", keys.verification_keys(verification_id), [outcome, detail])

    def overdue(self, limit: int = 1000) -> list[str]:
        """Ids of pending verifications whose deadline has passed by this host's clock."""
        now_ms = int(time.time() * 1000)
        return [_text(i) for i in self.redis.zrangebyscore(keys.DEADLINES, 0, now_ms, start=0, num=limit)]


def _verification(verification_id: str, flat: list) -> Verification | None:
    if not flat:
        return None
    return Verification.from_hash(verification_id, dict(zip(flat[::2], flat[1::2])))


def _text(value):
    return value.decode() if isinstance(value, bytes) else value
