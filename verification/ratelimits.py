"""Rate limits against SMS pumping and code guessing, kept in Redis by the `limits` library."""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from dataclasses import dataclass

from flask import g, request
from limits import RateLimitItem, parse_many

from verification import keys, metrics
from verification.errors import ApiError
from verification.store import Limit

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


@functools.lru_cache(maxsize=64)  # called with accepted keys only (auth.py), which the settings hold anyway
def key_fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def caller() -> Caller:
    """The caller of the current request. `remote_addr` is the client's own address when PROXY_FIX_HOPS
    matches the proxies in front; auth.py leaves the accepted key's fingerprint in `g`."""
    return Caller(ip=client_network(request.remote_addr), key_id=g.get("api_key_id"))


def client_network(address: str | None) -> str | None:
    """An IPv4 address as is; an IPv6 address as its /64, which one subscriber usually holds whole."""
    if address and len(address) <= _LONGEST_KEPT:
        return _client_network(address)  # a caller's requests come from one address: parsed once
    return _client_network.__wrapped__(address)


# Longer than any address (45 characters at most) or any identifier a limit's key has: worked out every
# time rather than kept, so a client a misconfigured PROXY_FIX_HOPS trusts cannot fill a cache with 8 KB.
_LONGEST_KEPT = 64


@functools.lru_cache(maxsize=256)
def _client_network(address: str | None) -> str | None:
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


@dataclass(frozen=True)
class Slot:
    """One limit a request falls under: which rule, for whom, and the Redis key of its hit times."""

    name: str
    item: RateLimitItem
    ident: str
    key: str


class Limiter:
    """The limits a request falls under. The `limits` library parses the rules and names their keys; the
    Lua scripts take the slots (lua/limits.lua) in the same round trip as the work, testing every one
    first, so a refusal spends nothing, and answer a refusal with its Retry-After."""

    def __init__(self, settings):
        self.rules = {name: _parse(getattr(settings, f"LIMIT_{name.upper()}")) for name in NAMES}

    def start(self, e164: str, who: Caller | None = None) -> list[Slot]:
        who = who or Caller()
        return self._slots([(STARTS_PER_PHONE, e164), (STARTS_PER_API_KEY, who.key_id),
                            (STARTS_PER_IP, who.ip), (SMS_GLOBAL, "all")])

    def check(self, who: Caller | None = None) -> list[Slot]:
        return self._slots([(CHECKS_PER_IP, (who or Caller()).ip)])

    def _slots(self, wanted: list[tuple[str, str | None]]) -> list[Slot]:
        return [Slot(name, item, ident, _key(name, item, ident))
                for name, ident in wanted if ident for item in self.rules[name]]

    def refusal(self, slot: Slot, retry_after: int) -> RateLimited:
        """The 429 for the first refusing limit; `retry_after` covers every one that refused."""
        metrics.rate_limited(slot.name)
        return RateLimited(f"{_REFUSALS[slot.name]} Retry after {retry_after} s.", limit=slot.name,
                           retryAfter=retry_after, headers={"Retry-After": str(retry_after)})


def _key(name: str, item: RateLimitItem, ident: str) -> str:
    """Where a limit's hits are kept: a number's in its own index (create.lua reads that key anyway); the
    others where the library's Redis storage would keep them, its prefix, then the item's own key."""
    if name == STARTS_PER_PHONE:
        return keys.phone(ident)
    if len(ident) > _LONGEST_KEPT:
        return _library_key.__wrapped__(name, item, ident)
    return _library_key(name, item, ident)


@functools.lru_cache(maxsize=1024)  # a few keys per caller (its API key, its address) and the global one
def _library_key(name: str, item: RateLimitItem, ident: str) -> str:
    return f"{keys.LIMITS_PREFIX}:{item.key_for(name, ident)}"


def as_limits(slots: list[Slot]) -> tuple[Limit, ...]:
    """The slots as the store's scripts take them."""
    return tuple((slot.key, slot.item.amount, slot.item.get_expiry()) for slot in slots)


def _parse(value: str):
    value = value.strip()
    return [] if value.lower() == "off" else parse_many(value)
