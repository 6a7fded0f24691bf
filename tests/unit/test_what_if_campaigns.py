"""`loyalty replay --policy`: how many triggers of each campaign would fire differently (no broker needed)."""
from __future__ import annotations

import orjson

from schemas.policy import CAMPAIGNS, Policy
from tools.replay import LogRecord, fold_log
from tools.verify import print_what_if, what_if_report


def record(offset: int, event_type: str, customer, at: str, **payload) -> LogRecord:
    value = orjson.dumps({"event_id": f"e{offset}", "event_type": event_type, "customer_id": customer,
                          "occurred_at": at, "payload": payload})
    return LogRecord(0, offset, None, customer.encode() if customer else None, value)


# One customer: a premium order (tier_upgraded; its 1000 points expire 2027-01-01, reminded on 2026-12-02
# local), active until 2026-01-31, potential, dormant on 2026-06-30 (win_back).
LOG = [
    record(0, "order.paid", "c1", "2026-01-01T02:00:00Z", order_id="o1", amount="1000.00"),
    record(1, "clock.tick", None, "2026-01-18T00:00:00Z"),   # member day 2026-01-18 (8 h late, active)
    record(2, "clock.tick", None, "2026-02-20T00:00:00Z"),   # member day 2026-02-18 (2 d 8 h late, potential)
    record(3, "clock.tick", None, "2026-12-05T00:00:00Z"),
]


def replay(policy: Policy):
    return fold_log(lambda partitions: iter(LOG), policy)


def test_the_report_counts_each_campaign_under_both_policies():
    current = replay(Policy())
    proposed = replay(Policy.model_validate({"campaigns": {"disabled": ["tier_upgraded"],
                                                           "member_day": {"monthly_day": 18}}}))
    by_campaign = what_if_report(current, proposed)["campaigns"]["by_campaign"]
    assert set(by_campaign) == set(CAMPAIGNS)
    assert by_campaign["tier_upgraded"] == {"before": 1, "after": 0, "no_longer_fired": 1, "newly_fired": 0}
    # the member days 2026-01-18 (active) and 2026-02-18 (potential); the tick of 2026-12-05 comes more
    # than 3 days after 2026-03-18 .. 2026-06-18, and from 2026-06-30 on the customer is dormant
    assert by_campaign["member_day"] == {"before": 0, "after": 2, "no_longer_fired": 0, "newly_fired": 2}
    assert by_campaign["win_back"] == {"before": 1, "after": 1, "no_longer_fired": 0, "newly_fired": 0}
    assert by_campaign["points_expiring"] == {"before": 1, "after": 1, "no_longer_fired": 0, "newly_fired": 0}
    assert by_campaign["birthday"] == {"before": 0, "after": 0, "no_longer_fired": 0, "newly_fired": 0}


def test_the_printed_report_has_a_line_per_campaign(capsys):
    current = replay(Policy())
    proposed = replay(Policy.model_validate({"campaigns": {"points_expiring": {"min_points": 2000}}}))
    print_what_if(what_if_report(current, proposed))
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split()[:5] == ["points_expiring", "1", "->", "0", "(0"] for line in lines), lines
    assert sum(line.strip().split()[0] in CAMPAIGNS for line in lines) == len(CAMPAIGNS)
