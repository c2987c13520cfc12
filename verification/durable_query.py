"""Instances by creation time: the scan of the creation index behind listing and purging many."""

from __future__ import annotations

import time
from itertools import islice

from verification.durable_status import BadValue, parse_time, runtime_filter, runtime_status
from verification.errors import NotFound
from verification.model import Verification

# Page size when `top` is absent, as Durable's own default, and the most one page may ask for.
DEFAULT_TOP, MAX_TOP = 100, 1000
# Index entries one listing request may examine, so a filter that matches little cannot scan everything.
SCAN_BUDGET = 5000
# Later than any creation time: the open end of a time range.
_END_OF_TIME = 10 ** 15


def filters(args, required_from: bool) -> tuple[int, int, frozenset | None]:
    """createdTimeFrom, createdTimeTo (ms) and runtimeStatus from the query string."""
    if required_from and not args.get("createdTimeFrom"):
        raise BadValue("createdTimeFrom is required to purge many instances.")
    low = parse_time(args["createdTimeFrom"], "createdTimeFrom") if args.get("createdTimeFrom") else 0
    high = parse_time(args["createdTimeTo"], "createdTimeTo") if args.get("createdTimeTo") else _END_OF_TIME
    return low, high, runtime_filter(args.get("runtimeStatus"))


def top(args) -> int:
    text = args.get("top", "").strip()
    if not text:
        return DEFAULT_TOP
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_TOP:
        raise BadValue(f"top must be an integer from 1 to {MAX_TOP}.")
    return int(text)


def instances(service, low: int, high: int, after, statuses, prefix: str):
    """(verification or None, (created ms, id)) in creation order, after `after`; None = filtered out.

    Every index entry examined is yielded, so callers can bound their work and resume from a position.
    """
    store = service.store
    entries = _index(store, low, high, after)
    while chunk := list(islice(entries, 100)):
        wanted = [(vid, ms) for vid, ms in chunk if vid.startswith(prefix)]
        records = dict(zip((vid for vid, _ in wanted), store.get_many([vid for vid, _ in wanted])))
        for vid, ms in chunk:
            verification = records.get(vid)
            if vid in records and verification is None:
                # The record reached its retention and vanished; its index entry goes too.
                store.purge(vid, ms)
            elif verification is not None and _past_deadline(verification):
                verification = _current(service, vid)
            if verification is not None and statuses and runtime_status(verification) not in statuses:
                verification = None
            yield verification, (ms, vid)


def _current(service, verification_id: str) -> Verification | None:
    try:
        return service.get(verification_id)
    except NotFound:
        return None


def _past_deadline(verification: Verification) -> bool:
    # Pending by the record, over by the clock: a read marks it expired, as a single status read does.
    return not verification.is_final and verification.expires_ms <= time.time() * 1000


def _index(store, low: int, high: int, after):
    """(id, created ms) from the creation index in (ms, id) order, strictly after `after`.

    Ranges end at whole milliseconds, so entries removed behind the scan never shift what comes next.
    """
    if after is not None:
        after_ms, after_id = after
        if low <= after_ms <= high:
            yield from ((vid, ms) for vid, ms in store.created_between(after_ms, after_ms, 0, -1) if vid > after_id)
        low = max(low, after_ms + 1)
    batch = 200
    while low <= high:
        rows = store.created_between(low, high, 0, batch)
        if not rows:
            return
        last_ms = rows[-1][1]
        full = len(rows) == batch
        if full:
            # The batch may end among several ids created in the same millisecond: take them all.
            rows = [row for row in rows if row[1] < last_ms] + store.created_between(last_ms, last_ms, 0, -1)
        yield from rows
        if not full:
            return
        low = last_ms + 1
