"""Rate limits against SMS pumping and code guessing, kept in Redis by the `limits` library."""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from dataclasses import dataclass

from flask import g, request
from limits import parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from verification import keys, metrics
from verification.errors import ApiError

# Each limit's name, as a 429 names it; its setting is LIMIT_<NAME>.
STARTS_PER_PHONE = "starts_per_phone"
STARTS_PER_API_KEY = "starts_per_api_key"
STARTS_PER_IP = "starts_per_ip"
SMS_GLOBAL = "sms_global"
CHECKS_PER_IP = "checks_per_ip"
NAMES = (STARTS_PER_PHONE, STARTS_PER_API_KEY, STARTS_PER_IP, SMS_GLOBAL, CHECKS_PER_IP)

_REFUSALS = {
    STARTS_PER_PHONE: "Too many verifications for this phone number.",
    STARTS_PER_API_KEY: "Too many verifications for this API key.",
    STARTS_PER_IP: "Too many verifications from this address.",
    SMS_GLOBAL: "The service is sending too many SMS right now.",
    CHECKS_PER_IP: "Too many checks from this address.",
}


@dataclass(frozen=True)
class Caller:
    """Who asks: the client's address and a fingerprint of its API key (the key never reaches Redis)."""

    ip: str | None = None
    key_id: str | None = None


def key_fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def caller() -> Caller:
    """The caller of the current request. `remote_addr` is the client's own address when PROXY_FIX_HOPS
    matches the proxies in front; auth.py leaves the accepted key's fingerprint in `g`."""
    return Caller(ip=client_network(request.remote_addr), key_id=g.get("api_key_id"))


def client_network(address: str | None) -> str | None:
    """An IPv4 address as is; an IPv6 address as its /64, which one subscriber usually holds whole."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or None
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped:
        return str(ip.ipv4_mapped)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False))


class RateLimited(ApiError):
    status = 429
    code = "rate_limited"


class Limiter:
    """Tests every limit a request falls under, then takes one slot of each: a refusal spends nothing."""

    def __init__(self, storage, settings):
        self.strategy = MovingWindowRateLimiter(storage)
        self.rules = {name: _parse(getattr(settings, f"LIMIT_{name.upper()}")) for name in NAMES}

    @classmethod
    def from_settings(cls, settings) -> "Limiter":
        # Timeouts, so a Redis outage becomes a prompt 503 (errors.py) and never a hung request.
        storage = storage_from_string(settings.REDIS_URL, key_prefix=keys.LIMITS_PREFIX, socket_timeout=2,
                                      socket_connect_timeout=2, health_check_interval=30)
        return cls(storage, settings)

    def start(self, e164: str, who: Caller | None = None) -> None:
        who = who or Caller()
        self._take([(STARTS_PER_PHONE, e164), (STARTS_PER_API_KEY, who.key_id), (STARTS_PER_IP, who.ip),
                     (SMS_GLOBAL, "all")])

    def check(self, who: Caller | None = None) -> None:
        self._take([(CHECKS_PER_IP, (who or Caller()).ip)])

    def _take(self, wanted: list[tuple[str, str | None]]) -> None:
        slots = [(name, item, ident) for name, ident in wanted if ident for item in self.rules[name]]
        if len(slots) == 1:
            # A moving-window hit is atomic and takes nothing when it refuses: one round trip, not two.
            if not self.strategy.hit(slots[0][1], slots[0][0], slots[0][2]):
                raise self._refusal(slots)
            return
        refused = [slot for slot in slots if not self.strategy.test(slot[1], slot[0], slot[2])]
        if not refused:
            for slot in slots:
                # Each hit is atomic, so no limit is ever exceeded; but two requests can both pass the
                # tests and race for the last slot. The loser is refused here, having already spent its
                # slots of the limits hit before this one.
                if not self.strategy.hit(slot[1], slot[0], slot[2]):
                    refused = [slot]
                    break
        if refused:
            raise self._refusal(refused)

    def _refusal(self, refused) -> RateLimited:
        now = time.time()
        # Seconds until every refusing limit has a free slot again: the oldest hit leaves its window.
        wait = max(self.strategy.get_window_stats(item, name, ident).reset_time - now
                   for name, item, ident in refused)
        retry_after = max(1, math.ceil(wait))
        name = refused[0][0]
        metrics.rate_limited(name)
        return RateLimited(f"{_REFUSALS[name]} Retry after {retry_after} s.", limit=name,
                           retryAfter=retry_after, headers={"Retry-After": str(retry_after)})


def _parse(value: str):
    value = value.strip()
    return [] if value.lower() == "off" else parse_many(value)
