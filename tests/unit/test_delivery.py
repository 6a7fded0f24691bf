"""The deliverer's pieces without a broker: signatures (checked with the docs' own snippet), retry decisions,
offsets committed only past done records, and one record at a time per customer."""
from __future__ import annotations

import random
import re
import time
from pathlib import Path

import pytest

from tools.deliver import selected
from tools.delivery_attempts import record_id
from tools.delivery_order import Lanes, Offsets
from tools.webhook import Answer, backoff_s, retry_after_s, signature

DOC = Path(__file__).resolve().parents[2] / "docs" / "delivery.md"


@pytest.fixture(scope="module")
def verify():
    """The verification snippet of docs/delivery.md, as a receiver would paste it."""
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    return namespace["verify"]


def test_the_documented_check_accepts_our_signature_and_refuses_tampering(verify):
    body, now = b'{"trigger_id":"t1"}', int(time.time())
    header = signature(b"secret", now, body)
    assert verify(b"secret", header, body)
    assert not verify(b"secret", header, body + b" ")
    assert not verify(b"other", header, body)
    assert not verify(b"secret", signature(b"secret", now - 3600, body), body)  # a replay of an old request
    assert not verify(b"secret", "garbage", body)


@pytest.mark.parametrize("answer, delivered, retryable, reason", [
    (Answer(200), True, False, "http_200"), (Answer(204), True, False, "http_204"),
    (Answer(500), False, True, "http_500"), (Answer(503), False, True, "http_503"),
    (Answer(429, 2.0), False, True, "http_429"), (Answer(408), False, True, "http_408"),
    (Answer(400), False, False, "http_400"), (Answer(410), False, False, "http_410"),
    (Answer(None, error="timeout"), False, True, "timeout"),
    (Answer(None, error="connection_error"), False, True, "connection_error"),
])
def test_what_an_answer_means(answer, delivered, retryable, reason):
    assert (answer.delivered, answer.retryable, answer.reason) == (delivered, retryable, reason)


def test_retry_after_reads_seconds_and_dates():
    assert retry_after_s("7") == 7.0
    assert retry_after_s("Thu, 01 Jan 2026 00:00:30 GMT", now_s=1767225600.0) == 30.0
    assert retry_after_s("Thu, 01 Jan 2026 00:00:30 GMT", now_s=1767225700.0) == 0.0
    assert retry_after_s(None) is None and retry_after_s("soon") is None


def test_backoff_grows_exponentially_under_its_cap_with_jitter():
    rng = random.Random(3)
    draws = {attempt: [backoff_s(attempt, 0.5, 8.0, rng) for _ in range(200)] for attempt in (1, 2, 3, 6)}
    assert all(0 <= d <= 0.5 for d in draws[1]) and all(0 <= d <= 8.0 for d in draws[6])
    assert max(draws[3]) > 1.0 and max(draws[6]) > 4.0  # the bound doubles
    assert len(set(draws[2])) == 200  # jitter: no two deliverers wait the same


def test_offsets_move_only_past_records_that_are_done():
    offsets = Offsets()
    first, second, third = (offsets.add(0, n) for n in (10, 11, 12))
    other = offsets.add(1, 5)
    assert offsets.committable() == {0: 10, 1: 5}
    second.done = third.done = True
    assert offsets.committable() == {0: 10, 1: 5}  # 10 is still retrying: 11 and 12 must come again
    first.done = other.done = True
    assert offsets.committable() == {0: 13, 1: 6} and offsets.outstanding() == 0
    offsets.forget({1})
    assert offsets.committable() == {0: 13}


def test_a_customers_next_record_waits_for_the_one_before():
    lanes: Lanes[str] = Lanes()
    lane_a, start = lanes.push((0, b"a"), "a1")
    assert start
    assert lanes.push((0, b"a"), "a2") == (lane_a, False)
    assert lanes.push((0, b"b"), "b1")[1]  # another customer goes on
    assert lanes.finish(lane_a) == "a2"
    assert lanes.finish(lane_a) is None
    assert lanes.push((0, b"a"), "a3")[1]


def test_a_lane_dropped_by_a_rebalance_ends_harmlessly():
    lanes: Lanes[str] = Lanes()
    old, _ = lanes.push((2, b"a"), "a1")
    lanes.forget({2})
    new, start = lanes.push((2, b"a"), "a1 again")
    assert start and lanes.finish(old) is None and lanes.finish(new) is None


def test_only_selects_campaigns_or_kinds():
    assert selected({"campaign": "win_back"}, frozenset({"win_back", "birthday"}))
    assert not selected({"campaign": "member_day"}, frozenset({"win_back"}))
    assert selected({"kind": "coupon_issued"}, frozenset({"coupon_issued"}))
    assert selected(None, frozenset()) and not selected(None, frozenset({"x"}))


def test_the_idempotency_key_is_the_records_deterministic_id():
    assert record_id("campaign-triggers", b"{}", {"trigger_id": "t1"}) == "t1"
    assert record_id("loyalty-ledger", b"{}", {"entry_id": "e1"}) == "e1"
    assert record_id("campaign-triggers", b"x", None) == record_id("campaign-triggers", b"x", None) != \
        record_id("campaign-triggers", b"y", None)
