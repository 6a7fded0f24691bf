"""Segment pages: a cursor walk over 200,000 members across two workers gives every id once, in bounded memory."""
from __future__ import annotations

import random
import tracemalloc
import zlib

import orjson
import pytest

from projections.partition import MemoryStore, PartitionFold
from projections.state import CustomerState
from projections.documents import member_row
from tests.support.events import day, ev
from streams.segments import (MAX_LIMIT, Page, PageError, PageRequest, decode_cursor, encode_cursor, local_page,
                              merge_pages, page_document, page_from_document, page_request)

PARTITIONS = 8
MEMBERS, OTHERS = 200_000, 20_000


def state_of(customer_id: str) -> CustomerState:
    """A customer's state, made from its id: the first MEMBERS ids are dormant vips, the others active."""
    n = int(customer_id.rsplit("-", 1)[1])
    state = CustomerState(customer_id, 1_700_000_000_000)
    state.status, state.tier = ("dormant", "vip") if n < MEMBERS else ("active", "vip")
    state.value = ("high", "medium", "low")[n % 3]
    state.points_balance = n
    state.last_purchase_ms = 1_700_000_000_000 + n * 1000 if n % 2 else None
    return state


class DerivedStore:
    """A store whose states are made on each read (200,000 states need not sit in memory to be paged)."""

    def __init__(self) -> None:
        self.reads = 0

    def get(self, customer_id: str) -> CustomerState:
        raise AssertionError("an export must not fill the state cache (get); it peeks")

    def peek(self, customer_id: str) -> CustomerState:
        self.reads += 1
        return state_of(customer_id)


@pytest.fixture(scope="module")
def workers() -> tuple[list[PartitionFold], list[PartitionFold], list[str]]:
    """Two workers of 4 partitions each, and every customer id (in random order, not in id order)."""
    rng = random.Random(7)
    ids = [f"{rng.getrandbits(40):010x}-{n}" for n in range(MEMBERS + OTHERS)]
    folds = [PartitionFold(DerivedStore()) for _ in range(PARTITIONS)]
    by_partition: list[list[str]] = [[] for _ in range(PARTITIONS)]
    for customer_id in ids:
        by_partition[zlib.crc32(customer_id.encode()) % PARTITIONS].append(customer_id)
    for fold, members in zip(folds, by_partition):
        fold.load(state_of(customer_id) for customer_id in members)
    return folds[:4], folds[4:], ids


def walk(a: list[PartitionFold], b: list[PartitionFold], limit: int, members: bool):
    """Page through dormant vips as worker a answers /segments: its page merged with b's, sent as JSON."""
    cursor = None
    while True:
        asked = page_request({"limit": str(limit), **({"cursor": cursor} if cursor else {}),
                              **({"members": "1"} if members else {})})
        from_b = orjson.loads(orjson.dumps(page_document(local_page(b, "dormant", "vip", None, asked), asked)))
        page = merge_pages([local_page(a, "dormant", None, None, asked), page_from_document(from_b)], asked)
        doc = orjson.loads(orjson.dumps(page_document(page, asked)))
        yield doc
        cursor = doc["next"]
        if cursor is None:
            return


def test_a_walk_gives_every_member_exactly_once_in_order_in_bounded_memory(workers):
    a, b, ids = workers
    expected = {customer_id for customer_id in ids if int(customer_id.rsplit("-", 1)[1]) < MEMBERS}
    count, last, pages = 0, "", 0
    tracemalloc.start()
    try:
        for doc in walk(a, b, MAX_LIMIT, members=True):
            pages += 1
            assert [row["customer_id"] for row in doc["members"]] == doc["customer_ids"]
            for row in doc["members"]:
                customer_id = row["customer_id"]
                assert customer_id > last and customer_id in expected  # in order, so never twice
                assert row == member_row(state_of(customer_id))
                last, count = customer_id, count + 1
            if pages == 1:
                first_page_peak_bytes = tracemalloc.get_traced_memory()[1]
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == MEMBERS == len(expected) and pages == MEMBERS // MAX_LIMIT
    # The walk needs what its first page needed, whatever the number of pages (20 here).
    assert peak_bytes < 1.25 * first_page_peak_bytes, (peak_bytes, first_page_peak_bytes)


def test_a_page_after_the_segment_changed_has_the_members_of_now(workers):
    fold = PartitionFold(MemoryStore())
    for n in (1, 2, 3, 4, 5):
        fold.apply(ev("customer.registered", day(0), customer=f"c{n}"))
    first = page_request({"limit": "2"})
    page = local_page([fold], "potential", None, None, first)
    assert page.ids == ["c1", "c2"] and page.more
    # Between the pages: c4 pays (active now), c0 and c9 register (potential: c0 before the cursor).
    fold.apply(ev("order.paid", day(1), customer="c4", order_id="o1", amount="10.00"))
    for customer_id in ("c0", "c9"):
        fold.apply(ev("customer.registered", day(1), customer=customer_id))
    second = page_request({"limit": "2", "cursor": page_document(page, first)["next"]})
    page = local_page([fold], "potential", None, None, second)
    assert page.ids == ["c3", "c5"] and page.more
    third = page_request({"limit": "2", "cursor": page_document(page, second)["next"]})
    assert local_page([fold], "potential", None, None, third) == Page(["c9"], [], False)


def test_small_pages_and_the_last_one(workers):
    a, b, _ = workers
    docs = []
    for doc in walk(a, b, 7, members=False):
        docs.append(doc)
        if len(docs) == 3:
            break
    ids = [i for doc in docs for i in doc["customer_ids"]]
    assert len(ids) == 21 and ids == sorted(set(ids)) and "members" not in docs[0]
    everything = sorted(i for fold in (*a, *b) for i in fold.segment("dormant", "vip"))
    assert ids == everything[:21]
    last = page_request({"cursor": encode_cursor(everything[-3]), "limit": "7"})
    page = merge_pages([local_page(a, "dormant", "vip", None, last), local_page(b, "dormant", "vip", None, last)], last)
    assert page.ids == everything[-2:] and page_document(page, last)["next"] is None


def test_an_earlier_worker_answering_every_id_merges_into_the_page():
    asked = PageRequest(after="c3", limit=2, members=False)
    page = merge_pages([page_from_document({"customer_ids": ["c1", "c2", "c3", "c4", "c5", "c6"]}),
                        page_from_document({"customer_ids": ["c35"], "next": None})], asked)
    assert page.ids == ["c35", "c4"] and page.more


@pytest.mark.parametrize("customer_id", ["c1", "客户-7", "a/b+c=d", "x" * 64])
def test_a_cursor_stands_for_the_id_and_is_url_safe(customer_id):
    cursor = encode_cursor(customer_id)
    assert decode_cursor(cursor) == customer_id and all(c.isalnum() or c in "-_" for c in cursor)


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": str(MAX_LIMIT + 1)}, {"limit": "ten"},
                                   {"cursor": "not a cursor!"}, {"cursor": "YQ="}, {"cursor": "_w"}])
def test_a_bad_limit_or_cursor_is_refused(query):
    with pytest.raises(PageError):
        page_request(query)


def test_the_default_limit_and_members_flag():
    assert page_request({}) == PageRequest(None, 1000, False)
    assert page_request({"members": "true", "limit": "5"}) == PageRequest(None, 5, True)
