"""One id, one record: every output id stands for exactly one byte string, whatever the history.

Consumers drop repeats by id (docs/outputs.md), so an id sent twice with different contents loses the
second record for them. Histories here hold late events, time zone changes, repeated event ids and
clock moves of months, folded as one partition in batches (as the worker folds them).
"""
from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.partition import MemoryStore, PartitionFold
from schemas.policy import Policy
from tests.unit import test_properties, test_properties_rewards
from tools.verify import output_id
from streams.settings import OUTPUT_TOPICS

SEARCHING = settings(max_examples=200, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Reminders of small amounts a few days ahead, so that late credits land on dates already reminded of.
REMINDING = Policy.model_validate({"campaigns": {"points_expiring": {"remind_days": 3, "min_points": 1}},
                                   "lots": {"expiry_days": 40}})


def ids_with_two_contents(log, policy: Policy) -> dict[str, set[bytes]]:
    """Fold a log; return the output ids that were sent with more than one content."""
    partition = PartitionFold(MemoryStore(), policy)
    contents: dict[str, set[bytes]] = {}
    for offset, event in enumerate(log):
        for effect in partition.apply(event, offset)[1]:
            if effect.kind == "notice":
                continue
            topic, value = OUTPUT_TOPICS[effect.kind], orjson.dumps(effect.record)
            contents.setdefault(f"{topic}/{output_id(topic, value, effect.record)}", set()).add(value)
    return {record_id: values for record_id, values in contents.items() if len(values) > 1}


@SEARCHING
@given(log=test_properties.histories(), policy=st.sampled_from([Policy(), REMINDING]))
def test_every_output_id_has_one_content_over_late_events_and_time_zone_changes(log, policy):
    assert ids_with_two_contents(log, policy) == {}


# A claim id is remembered for redemption_id_days; a claim id sent again after that issues a coupon under the
# same id (docs/rules.md, "Coupons"). Within the memory, one id is one coupon: that is what this holds.
REMEMBERING_CLAIMS = test_properties_rewards.POLICY.model_copy(update={
    "retention": test_properties_rewards.POLICY.retention.model_copy(update={"redemption_id_days": 3650})})


@SEARCHING
@given(log=test_properties_rewards.histories())
def test_every_coupon_ledger_and_trigger_id_has_one_content_with_rewards(log):
    assert ids_with_two_contents(log, REMEMBERING_CLAIMS) == {}
