"""The web app with parts of a check taken out, for `python -m bench.ablate`: `gunicorn bench.ablation:app`.

BENCH_ABLATE names the parts (PARTS), comma-separated. Each is replaced in the process that serves, as the
app is built, by nothing or by the least a check could do in its place. Never for production.
"""

from __future__ import annotations

import logging
import os

import web
from verification import codes, keys, metrics, store


def _replace(owner, name: str, value) -> None:
    # A part renamed in the app must fail here, not quietly leave the variant the same as the shipped one.
    if not hasattr(owner, name):
        raise AttributeError(f"{owner!r} has no {name}: bench/ablation.py is out of step with the app")
    setattr(owner, name, value)


def _no_log_line() -> None:
    logging.getLogger("verification.service").setLevel(logging.WARNING)


def _no_metrics() -> None:
    for name in ("checked", "finished", "approved_after", "rate_limited"):
        _replace(metrics, name, lambda *args, **kwargs: None)


# What the HMAC becomes without it: any code "matches" a record holding this (bench.ablate checks so).
MADE_UP_DIGEST = "0" * 32


def _no_hmac() -> None:
    _replace(codes, "digest", lambda secret, verification_id, code: MADE_UP_DIGEST)


def _counted(outcome, channel: str):
    store._count_check(outcome, channel)  # as Store.check does: the metrics are a part of their own
    return outcome


def _check_by_hgetall() -> None:
    # Every check a wrong one, from the record as it is: no compare, no attempt spent, no rate limit.
    def check(self, verification_id, code_hash, channel, limits=(), of_phone=""):
        return _counted(store.CheckOutcome("wrong", self.get(verification_id)), channel)

    _replace(store.Store, "check", check)


def _check_by_trivial_script() -> None:
    # The same through a script that does nothing else: what calling a script costs by itself.
    def check(self, verification_id, code_hash, channel, limits=(), of_phone=""):
        if "_hgetall_script" not in self.__dict__:  # registered once per Store, at its first check
            self._hgetall_script = self.redis.register_script("return redis.call('HGETALL', KEYS[1])")
        flat = self._hgetall_script(keys=[keys.state(verification_id)])
        return _counted(store.CheckOutcome("wrong", store._verification(verification_id, flat)), channel)

    _replace(store.Store, "check", check)


PARTS = {
    "log": _no_log_line,  # the service's log line of each check (gunicorn's access line stays)
    "metrics": _no_metrics,  # the Prometheus counters
    "hmac": _no_hmac,  # the code's HMAC
    "script": _check_by_trivial_script,  # check.lua: a script that only runs HGETALL instead
    "hgetall": _check_by_hgetall,  # check.lua: HGETALL instead
}


def parts(value: str) -> list[str]:
    named = [part.strip() for part in value.split(",") if part.strip()]
    unknown = sorted(set(named) - set(PARTS))
    if unknown:
        raise ValueError(f"BENCH_ABLATE: unknown part(s) {', '.join(unknown)}; known: {', '.join(PARTS)}")
    return named


def __getattr__(name: str):
    # Built on first use in each gunicorn worker, as web.app is.
    if name == "app":
        for part in parts(os.environ.get("BENCH_ABLATE", "")):
            PARTS[part]()
        globals()["app"] = web.create_app()
        return globals()["app"]
    raise AttributeError(name)
