"""docs/rules.md, policy changes: a policy.changed takes effect when the partition clock reaches its time."""
from __future__ import annotations

import orjson
from hypothesis import given as h_given, settings, strategies as st

from projections.effects import CampaignTriggered, LedgerEntryMade, Outcome, Output, Transition
from projections.partition import PartitionFold, SavedStateStore
from projections.policies import PolicySchedule
from schemas.events import PolicyChanged
from schemas.policy import Policy
from schemas.policy_doc import policy_changed_document, policy_version
from schemas.validate import Rejection, validate_message
from tests.support.events import day, ev, event_line, paid, tick
from tests.support.folds import FoldsFrom
from tests.support.scenario import given
from schemas.timeutil import parse_rfc3339_ms
from tools.replay import LogRecord, fold_log

MUG = {"points": 50, "coupon_value": "10.00", "valid_days": 30}
BEFORE = Policy.model_validate({"rewards": {"mug": MUG, "tea": MUG}})
AFTER = Policy.model_validate({"tier": {"vip_min": "2000.00"}, "rewards": {"tea": MUG},
                               "earn": {"multiplier": {"standard": "2", "premium": "2.5", "vip": "3"}}})


def paid_line(order_id: str, amount: str, at: str) -> bytes:
    """An order.paid of c1 as the log holds it."""
    return event_line(f"e-{order_id}", "order.paid", "c1", at, order_id=order_id, amount=amount)


def tick_line(at: str) -> bytes:
    return event_line(f"t-{at}", "clock.tick", None, at)


def change(policy: Policy, effective: str, published: str = day(0), id: str = "p1", name=None) -> PolicyChanged:
    """Build a validated policy.changed."""
    event = validate_message(orjson.dumps(policy_changed_document(policy, effective, published, id, name)))
    assert isinstance(event, PolicyChanged), event
    return event


def test_a_change_waits_for_the_clock_then_re_evaluates_tiers_at_its_time():
    s = given(paid("o1", "3000.00", day(0)), policy=BEFORE).when(change(AFTER, day(10)), tick(day(9)))
    s.then(tier="premium")
    assert s.fold.policy is BEFORE and s.fold.schedule.next_ms < 2**62
    s.when(tick(day(12)))
    assert [(u["from"], u["to"], u["at"]) for u in s.updates(kind="tier_changed")] == [
        ("premium", "vip", "2026-01-11T02:00:00Z")]
    assert s.updates(kind="tier_changed")[0]["source_event_id"] == "p1"
    assert s.fold.policy is not BEFORE and s.fold.schedule.in_force.version == policy_version(AFTER)
    assert s.campaigns(campaign="tier_upgraded"), "the upgrade is congratulated as any other"


def test_outputs_carry_the_version_of_the_policy_in_force_when_they_were_made():
    short_lots = Policy.model_validate({**BEFORE.model_dump(mode="json"), "lots": {"expiry_days": 5}})
    old, new = policy_version(short_lots), policy_version(AFTER, "spring")
    s = given(paid("o1", "3000.00", day(0)), change(AFTER, day(10), name="spring"), policy=short_lots)
    s.when(paid("o2", "100.00", day(4)))
    assert s.points() == [120] and s.versions(LedgerEntryMade) == [old]  # premium: 1.2
    s.when(tick(day(12)))  # one clock move: the lots expiring at days 5 and 9 under the old policy, then the change
    assert [parse_rfc3339_ms(e["occurred_at"]) for e in s.ledger(kind="expire")] == [
        parse_rfc3339_ms(day(5)), parse_rfc3339_ms(day(9))]
    assert s.versions(LedgerEntryMade, kind="expire") == [old, old]
    assert s.versions(Transition, kind="tier_changed") == [new]
    assert s.versions(CampaignTriggered, campaign="tier_upgraded") == [new]
    s.when(paid("o3", "100.00", day(13)))
    assert s.points(kind="earn") == [300] and s.versions(LedgerEntryMade, kind="earn") == [new]


def test_a_change_dated_before_the_clock_stamps_its_re_evaluation_with_the_new_version():
    s = given(paid("o1", "3000.00", day(0)), tick(day(20)), policy=BEFORE).when(change(AFTER, day(10), name="late"))
    assert s.versions(Transition, kind="tier_changed") == [policy_version(AFTER, "late")]


def test_earning_rates_apply_to_events_from_the_change_on_and_lots_keep_their_expiry():
    s = given(paid("o1", "100.00", day(0)), change(AFTER, day(5)), policy=BEFORE)
    lot_before = list(s.state().lots)
    s.when(paid("o2", "100.00", day(4)))
    assert s.points(kind="earn") == [100]
    s.when(paid("o3", "100.00", day(6)))
    assert s.points(kind="earn") == [200]
    assert s.state().lots[0] == lot_before[0]


def test_a_removed_reward_is_no_longer_claimable():
    s = given(paid("o1", "100.00", day(0)), change(AFTER, day(5)), policy=BEFORE)
    s.when(ev("reward.claimed", day(1), claim_id="k1", reward_id="mug"))
    assert s.coupons() and not s.updates(kind="claim_rejected")
    s.when(ev("reward.claimed", day(6), claim_id="k2", reward_id="mug"))
    assert s.updates(kind="claim_rejected", reason="unknown_reward")


def test_a_change_dated_before_the_clock_takes_effect_at_once():
    s = given(paid("o1", "3000.00", day(0)), tick(day(20)), policy=BEFORE).when(change(AFTER, day(10)))
    assert [(u["to"], u["at"]) for u in s.updates(kind="tier_changed")] == [("vip", "2026-01-21T02:00:00Z")]
    assert s.outcomes == [Outcome.POLICY]


def test_the_same_change_twice_is_applied_once_and_a_rollback_forgets_a_scheduled_change():
    fold = PartitionFold(SavedStateStore(), BEFORE)
    fold.apply(change(AFTER, day(10)))
    fold.apply(change(AFTER, day(10)))
    assert len(fold.schedule.scheduled) == 1
    fold.begin_batch()
    fold.apply(change(BEFORE, day(11), id="p2"))
    fold.apply(tick(day(12)))
    fold.rollback()
    assert len(fold.schedule.scheduled) == 1 and fold.policy is BEFORE


def test_a_schedule_survives_its_stored_form():
    fold = PartitionFold(SavedStateStore(), BEFORE)
    fold.apply(change(AFTER, day(10), name="spring"))
    again = PolicySchedule.from_bytes(fold.schedule.to_bytes())
    assert again.in_force.version == policy_version(BEFORE)
    assert [(c.version, c.effective_ms, c.source) for c in again.scheduled] == [
        (policy_version(AFTER, "spring"), fold.schedule.next_ms, "p1")]


def test_an_invalid_or_tampered_change_is_rejected_with_its_reason():
    document = policy_changed_document(AFTER, day(10), day(0), "p9")
    document["payload"]["policy"]["tier"]["vip_min"] = "1500.00"
    rejection = validate_message(orjson.dumps(document))
    assert isinstance(rejection, Rejection) and "does not match the policy's content" in rejection.detail
    document["payload"]["version"] = "x"
    document["payload"]["policy"]["tier"]["premium_min"] = "9000.00"
    rejection = validate_message(orjson.dumps(document))
    assert rejection.error == "invalid_field: payload.policy: tier.premium_min must not exceed tier.vip_min"


def _bad_changes() -> dict[str, tuple[bytes, str]]:
    """Malformed or invalid policy.changed records, each with the DLQ reason it must get."""
    def document(**changes) -> dict:
        doc = policy_changed_document(AFTER, day(10), day(0), "bad")
        doc["payload"].update(changes)
        return doc
    tampered = document()
    tampered["payload"]["policy"]["tier"]["vip_min"] = "1500.00"
    no_time = document()
    del no_time["payload"]["effective_at"]
    unknown_key = document()
    unknown_key["payload"]["policy"]["earn"] = {"nonsense": 1}
    return {"tampered": (orjson.dumps(tampered), "invalid_field"), "no time": (orjson.dumps(no_time), "missing_field"),
            "bad time": (orjson.dumps(document(effective_at="soon")), "invalid_field"),
            "unknown key": (orjson.dumps(unknown_key), "invalid_field"),
            "truncated": (orjson.dumps(tampered)[:60], "invalid_json")}


def _worker_records(lines: list[bytes]) -> list:
    """Put lines on partition 0 as the worker reads them (keyed c1 unless a broadcast or not JSON)."""
    from streams.pipeline import Record
    return [Record(0, n, b"c1" if b'"customer_id":"c1"' in line else None, line) for n, line in enumerate(lines)]


def _pipeline(policy: Policy):
    from projections.partition import MemoryStore
    from streams.metrics import LoyaltyMetrics
    from streams.pipeline import Pipeline
    return Pipeline(policy, LoyaltyMetrics(), FoldsFrom(lambda _: PartitionFold(MemoryStore(), policy)),
                    wall_clock_s=lambda: 1_800_000_000.0, clock="event")


def test_a_malformed_or_invalid_change_goes_to_the_dlq_with_its_reason_and_changes_nothing():
    bad = _bad_changes()
    good = [orjson.dumps(policy_changed_document(BEFORE, day(1), day(0), "p0")), paid_line("o1", "3000.00", day(0))]
    after = [tick_line(day(12)), paid_line("o2", "100.00", day(13))]
    with_bad, without = _pipeline(BEFORE), _pipeline(BEFORE)
    records = _worker_records([good[0], *(line for line, _ in bad.values()), good[1], *after])
    out = with_bad.process(records)
    clean = without.process([records[0], *records[-3:]])  # the same offsets, without the bad ones
    dlq = [orjson.loads(o.value) for o in out if o.topic == "customer-events-dlq"]
    assert [d["reason"] for d in dlq] == [reason for _, reason in bad.values()]
    assert "does not match the policy's content" in dlq[0]["error"] and dlq[0]["source"]["offset"] == 1
    assert [o.value for o in out if o.topic != "customer-events-dlq"] == [o.value for o in clean], "nothing changed"
    fold = with_bad.folds[0]
    assert fold.schedule == without.folds[0].schedule and fold.policy_version == policy_version(BEFORE)
    assert fold.store["c1"].to_bytes() == without.folds[0].store["c1"].to_bytes()


def test_a_change_dated_before_the_clock_takes_effect_at_once_in_the_worker_and_the_same_in_replay():
    from tools.verify import output_id, value_digest
    lines = [paid_line("o1", "3000.00", day(0)), tick_line(day(20)),
             orjson.dumps(policy_changed_document(AFTER, day(10), day(0), "late", "late")),
             paid_line("o2", "100.00", day(21))]
    pipeline, batches = _pipeline(BEFORE), _worker_records(lines)
    out = [o for batch in (batches[:2], batches[2:3], batches[3:]) for o in pipeline.process(batch)]
    updates = [orjson.loads(o.value) for o in out if o.topic == "customer-updates"]
    late = policy_version(AFTER, "late")
    assert [(u["to"], u["at"], u["policy_version"]) for u in updates if u["kind"] == "tier_changed"] == [
        ("premium", "2026-01-01T02:00:00Z", policy_version(BEFORE)), ("vip", "2026-01-21T02:00:00Z", late)], "at once"
    replayed = fold_log(lambda _: _records(lines), BEFORE, outputs=True)
    assert replayed.states["c1"].to_bytes() == pipeline.folds[0].store["c1"].to_bytes()
    assert replayed.versions[0] == late
    live = {o.topic: {} for o in out}
    for o in out:
        live[o.topic][output_id(o.topic, o.value, orjson.loads(o.value))] = value_digest(o.value)
    assert live == replayed.outputs, "replay derives the same output records, policy_version included"


def _records(lines: list[bytes]) -> list[LogRecord]:
    """Put lines on one partition, keyed as `loyalty produce` keys them."""
    out = []
    for offset, line in enumerate(lines):
        customer = orjson.loads(line).get("customer_id")
        out.append(LogRecord(0, offset, None, customer.encode() if customer else None, line))
    return out


@settings(max_examples=25, deadline=None)
@h_given(st.lists(st.tuples(st.sampled_from(["paid", "tick", "change", "claim"]), st.integers(0, 40),
                            st.integers(0, 3)), min_size=1, max_size=30))
def test_replaying_a_history_with_policy_changes_twice_gives_the_same_state(steps):
    lines = []
    for n, (kind, at, who) in enumerate(steps):
        if kind == "paid":
            doc = {"event_type": "order.paid", "customer_id": f"c{who}", "payload": {"order_id": f"o{n}", "amount": "900.00"}}
        elif kind == "claim":
            doc = {"event_type": "reward.claimed", "customer_id": f"c{who}", "payload": {"claim_id": f"k{n}", "reward_id": "mug"}}
        elif kind == "tick":
            doc = {"event_type": "clock.tick", "customer_id": None, "payload": {}}
        else:
            doc = policy_changed_document((AFTER, BEFORE)[who % 2], day(at + who), day(0), f"p{n}")
        doc.update(event_id=doc.get("event_id", f"e{n}"), occurred_at=doc.get("occurred_at", day(at)))
        lines.append(orjson.dumps(doc))
    records = _records(lines)
    first, second = fold_log(lambda _: records, BEFORE), fold_log(lambda _: records, BEFORE)
    assert first.rejected == 0 and len(first.states) == len({s[2] for s in steps if s[0] in ("paid", "claim")})
    assert {k: v.to_bytes() for k, v in first.states.items()} == {k: v.to_bytes() for k, v in second.states.items()}


def test_a_loaded_partition_keeps_the_log_s_policy_unless_the_file_is_told_to_win():
    from streams.policy_source import PolicyConflict, choose_policies
    import pytest
    fold = PartitionFold(SavedStateStore(), BEFORE)
    fold.apply(change(AFTER, day(0), name="spring"))
    fold.apply(tick(day(1)))
    saved = fold.schedule
    assert choose_policies(None, AFTER, "after.toml", None).in_force.source == "file"
    assert choose_policies(saved, AFTER, "after.toml", None) is saved, "the same rules by content: no conflict"
    assert choose_policies(saved, BEFORE, None, None) is saved, "no file: the log's"
    assert choose_policies(saved, BEFORE, "before.toml", "log") is saved
    assert choose_policies(saved, BEFORE, "before.toml", "file").in_force.policy is BEFORE
    with pytest.raises(PolicyConflict, match="differs from LOYALTY_POLICY before.toml"):
        choose_policies(saved, BEFORE, "before.toml", None)


def _lines(*docs: dict) -> list[LogRecord]:
    return _records([orjson.dumps({"schema_version": 1, **d}) for d in docs])


WHAT_IF_HISTORY = [
    {"event_id": "e1", "event_type": "order.paid", "customer_id": "c1", "occurred_at": day(0),
     "payload": {"order_id": "o1", "amount": "3000.00"}},
    {"event_id": "e2", "event_type": "reward.claimed", "customer_id": "c1", "occurred_at": day(1),
     "payload": {"claim_id": "k1", "reward_id": "mug"}},
    {"event_id": "t1", "event_type": "clock.tick", "customer_id": None, "occurred_at": day(10), "payload": {}},
]


def test_a_what_if_keeps_the_catalog_unless_told_to_replace_and_starts_when_told():
    from projections.policies import WhatIf
    records = _lines(*WHAT_IF_HISTORY)
    overlay = {"tier": {"vip_min": "2000.00"}}
    kept = fold_log(lambda _: records, BEFORE, what_if=WhatIf(overlay)).states["c1"]
    assert kept.tier == "vip" and kept.coupons, "the overlay keeps the shop's catalog"
    replaced = fold_log(lambda _: records, BEFORE, what_if=WhatIf(overlay, replace=True)).states["c1"]
    assert replaced.tier == "vip" and not replaced.coupons, "a whole new policy has no catalog"
    late = fold_log(lambda _: records, BEFORE, what_if=WhatIf(overlay, from_ms=parse_rfc3339_ms(day(5))))
    assert late.states["c1"].tier == "vip" and late.versions[0] == policy_version(BEFORE)
    early = fold_log(lambda _: records[:2], BEFORE, what_if=WhatIf(overlay, from_ms=parse_rfc3339_ms(day(5))))
    assert early.states["c1"].tier == "premium", "not before its moment"


def test_a_what_if_names_the_policy_it_folded_with_in_its_outputs():
    from projections.partition import MemoryStore
    from projections.policies import WhatIf, overlaid
    from schemas.policy_doc import policy_document
    overlay = {"tier": {"vip_min": "2000.00"}}
    fold = PartitionFold(MemoryStore(), BEFORE, what_if=WhatIf(overlay))
    _, effects = fold.apply(paid("o1", "3000.00", day(0)))
    shaped = Policy.model_validate(overlaid(policy_document(BEFORE), overlay))
    assert {e.record["policy_version"] for e in effects if isinstance(e, Output)} == {policy_version(shaped)}
    assert fold.schedule.in_force.version == policy_version(BEFORE), "the log's version stays the one in force"
