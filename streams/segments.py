"""Pages of a segment: the ids after a cursor, up to a limit, from the partitions of one worker or of all."""
from __future__ import annotations

import base64
import binascii
from bisect import bisect_right
from itertools import chain
from typing import Any, Iterable, Mapping, NamedTuple, Optional
from urllib.parse import urlencode
from weakref import WeakKeyDictionary

from projections.documents import member_row

DEFAULT_LIMIT = 1_000
MAX_LIMIT = 10_000


class PageError(ValueError):
    """A limit or a cursor that no page can be made of."""


class PageRequest(NamedTuple):
    """A page: the ids after `after` (None: from the first), at most `limit` of them, with members' rows or not."""
    after: Optional[str]
    limit: int
    members: bool


class Page(NamedTuple):
    """The ids of a page in order, their rows (if asked), and whether more ids follow the last."""
    ids: list[str]
    members: list[dict]
    more: bool


def encode_cursor(customer_id: str) -> str:
    """Return the cursor of the page after this id: opaque (base64url), so its form may change."""
    return base64.urlsafe_b64encode(customer_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """Return the id a cursor stands for (PageError if no page gave it)."""
    try:
        customer_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        customer_id = ""
    if not customer_id or encode_cursor(customer_id) != cursor:
        raise PageError(f"not a cursor: {cursor[:64]!r}; give the `next` of the page before")
    return customer_id


def page_request(query: Mapping[str, str]) -> PageRequest:
    """Read `cursor`, `limit` (default DEFAULT_LIMIT, at most MAX_LIMIT) and `members` from a query string."""
    limit = query.get("limit") or str(DEFAULT_LIMIT)
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
        raise PageError(f"limit: {limit[:16]!r} is not a whole number from 1 to {MAX_LIMIT}")
    cursor = query.get("cursor") or None
    return PageRequest(None if cursor is None else decode_cursor(cursor), int(limit),
                       query.get("members", "").lower() in ("1", "true"))


def peer_path(status: Optional[str], tier: Optional[str], value: Optional[str], request: PageRequest) -> str:
    """The /segments path that asks another worker for its own partitions' page."""
    asked = {k: v for k, v in (("status", status), ("tier", tier), ("value", value)) if v}
    if request.after is not None:
        asked["cursor"] = encode_cursor(request.after)
    asked.update(limit=str(request.limit), scope="local")
    if request.members:
        asked["members"] = "1"
    return f"/segments?{urlencode(asked)}"


# Per partition fold, the last segment it was asked for, in id order, with the version it was sorted at.
_SORTED: "WeakKeyDictionary[Any, tuple[tuple, list[str]]]" = WeakKeyDictionary()


def sorted_segment(fold: Any, status: Optional[str], tier: Optional[str], value: Optional[str]) -> list[str]:
    """Return a fold's segment in id order, sorted again only when the fold has changed since."""
    # Between batches (when pages are made) a segment changes only through an applied event or a clock
    # move: both move (events_applied, clock_ms) forward, and a rollback restores them with the segments.
    version = (status, tier, value, fold.clock_ms, fold.totals.events_applied)
    cached = _SORTED.get(fold)
    if cached is None or cached[0] != version:
        cached = _SORTED[fold] = (version, sorted(fold.segment(status, tier, value)))
    return cached[1]


def first_after(ids: list[str], after: Optional[str], count: int) -> list[str]:
    """Return the first `count` of sorted ids above `after`."""
    start = 0 if after is None else bisect_right(ids, after)
    return ids[start:start + count]


def read_state(fold: Any, customer_id: str) -> Any:
    """Read a member's state; past the worker's state cache, which an export would otherwise fill."""
    store = fold.store
    return getattr(store, "peek", store.get)(customer_id)


def local_page(folds: Iterable[Any], status: Optional[str], tier: Optional[str], value: Optional[str],
               request: PageRequest) -> Page:
    """Return the page of these partition folds: each one's first ids after the cursor, merged."""
    # One more than the limit from each: whether anything follows the page is then known.
    per_fold = [(fold, first_after(sorted_segment(fold, status, tier, value), request.after, request.limit + 1))
                for fold in folds]
    found = sorted(chain.from_iterable(ids for _, ids in per_fold))
    chosen = found[:request.limit]
    rows = []
    if request.members and chosen:
        owner = {customer_id: fold for fold, ids in per_fold for customer_id in ids[:bisect_right(ids, chosen[-1])]}
        rows = [member_row(read_state(owner[customer_id], customer_id)) for customer_id in chosen]
    return Page(chosen, rows, len(found) > request.limit)


def merge_pages(pages: Iterable[Page], request: PageRequest) -> Page:
    """Merge the pages several workers gave for one cursor: the first `limit` ids of their union."""
    ids: list[str] = []
    rows: dict[str, dict] = {}
    more = False
    for page in pages:
        # A worker of an earlier version answers every id, from the first: keep those after the cursor.
        ids.extend(page.ids if request.after is None else (i for i in page.ids if i > request.after))
        rows.update((row["customer_id"], row) for row in page.members)
        more = more or page.more
    ids.sort()
    chosen = ids[:request.limit]
    return Page(chosen, [rows[i] for i in chosen] if request.members else [], more or len(ids) > request.limit)


def page_document(page: Page, request: PageRequest) -> dict:
    """Return the JSON of a page: its ids, the cursor of the next page (null after the last), its members."""
    doc: dict = {"customer_ids": page.ids, "next": encode_cursor(page.ids[-1]) if page.more and page.ids else None}
    if request.members:
        doc["members"] = page.members
    return doc


def page_from_document(doc: dict) -> Page:
    """Read a page another worker answered (an earlier version's has no `next`: all its ids at once)."""
    return Page(doc["customer_ids"], doc.get("members", []), doc.get("next") is not None)
