"""Compare a replay with the live state (`--verify`) or with a replay under another policy (`--policy`)."""
from __future__ import annotations

import hashlib
import time
from collections import Counter
from typing import Optional

import click
import orjson
from kafka import KafkaAdminClient, TopicPartition

from projections.state import CustomerState
from projections.documents import Totals
from schemas.policy import CAMPAIGNS
from streams.kafka_auth import kafka_python_options
from streams.kafka_log import read_topic
from streams.settings import (CAMPAIGNS_TOPIC, CLOCK_KEY, PARTITION_KEYS, COUPONS_TOPIC, INPUT_TOPIC, LEDGER_TOPIC, OUTPUT_TOPICS,
                              Settings)
from tools.query import QueryError

_CATCH_UP_TIMEOUT_S = 60.0
_PROGRESS_EVERY_S = 5.0


def wait_for_workers(settings: Settings, ends: dict[int, int], timeout_s: float = _CATCH_UP_TIMEOUT_S) -> None:
    """Wait until the workers' group has committed every input record the replay read, saying so on stderr."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=10_000,
                             **kafka_python_options())
    try:
        started = time.monotonic()
        next_report = None
        while True:
            behind = _behind(_committed_offsets(admin, settings.app_id, ends), ends)
            if not behind:
                return
            waited = time.monotonic() - started
            if waited > timeout_s:
                raise QueryError(f"the workers of group {settings.app_id!r} have not caught up with partitions "
                                 f"{sorted(behind)} within {timeout_s:.0f}s; is a worker running?")
            if next_report is None:  # said once, and only when the workers are behind
                click.echo(f"verify: waiting up to {timeout_s:g}s for the workers of group {settings.app_id!r} "
                           f"to commit the {sum(ends.values())} input records the replay read "
                           f"({sum(behind.values())} not yet, on partitions {sorted(behind)})", err=True)
                next_report = _PROGRESS_EVERY_S
            elif waited >= next_report:
                click.echo(f"verify: {sum(behind.values())} records not yet committed on partitions "
                           f"{sorted(behind)} after {waited:.0f}s", err=True)
                next_report = (waited // _PROGRESS_EVERY_S + 1) * _PROGRESS_EVERY_S
            time.sleep(0.2)
    finally:
        admin.close()


def _behind(committed: dict, ends: dict[int, int]) -> dict[int, int]:
    """Return the input records not yet committed, by partition (none committed: from offset 0)."""
    behind = {}
    for partition, end in ends.items():
        offset = committed.get(TopicPartition(INPUT_TOPIC, partition))
        done = 0 if offset is None or offset.offset < 0 else offset.offset
        if done < end:
            behind[partition] = end - done
    return behind


def _committed_offsets(admin: KafkaAdminClient, group_id: str, ends: dict[int, int]) -> dict:
    """Return the group's committed input offsets (kafka-python 3 renamed the call and keys it by group)."""
    if hasattr(admin, "list_group_offsets"):
        partitions = [TopicPartition(INPUT_TOPIC, p) for p in sorted(ends)]
        return admin.list_group_offsets({group_id: partitions}).get(group_id, {})
    return admin.list_consumer_group_offsets(group_id)


def live_states(settings: Settings, ends: dict[int, int],
                versions: Optional[dict[int, str]] = None) -> dict[str, CustomerState]:
    """Read the live customer states from the table's changelog (the last value of each key).

    `versions`, if given, receives the policy version each partition's last clock record names.
    """
    wait_for_workers(settings, ends)
    latest: dict[bytes, Optional[bytes]] = {}
    for record in read_topic(settings.broker, settings.changelog_topic):
        latest[record.key] = record.value
        if versions is not None and record.key == CLOCK_KEY and record.value:
            version = orjson.loads(record.value).get("policy")  # None: written before versions were
            if version is not None:
                versions[record.partition] = version
    return {key.decode(): CustomerState.from_bytes(value)
            for key, value in latest.items() if value is not None and key not in PARTITION_KEYS}


def output_id(topic: str, value: bytes, record: dict) -> str:
    """Return an output record's identity: its deterministic id, or (updates have none) its digest."""
    if topic == LEDGER_TOPIC:
        return record["entry_id"]
    if topic == CAMPAIGNS_TOPIC:
        return record["trigger_id"]
    if topic == COUPONS_TOPIC:
        return f"{record['kind']}:{record['coupon_id']}"
    return value_digest(value).hex()


def value_digest(value: bytes) -> bytes:
    """Return a short digest of a record's bytes (to compare outputs without holding them)."""
    return hashlib.blake2b(value, digest_size=12).digest()


def output_differences(settings: Settings, derived: dict[str, dict[str, bytes]],
                       live: dict[str, CustomerState], examples: int = 10) -> dict:
    """Compare the output topics with the outputs derived from the log, and balances with the ledger.

    Records are matched by their deterministic ids (ledger entry_id, trigger_id; an update by its
    bytes). A record sent twice with the same bytes is at-least-once delivery, not a difference; an id
    sent with two different contents is a finding of its own (`two_contents`): a consumer that drops
    repeats by id keeps only the first.
    """
    report: dict = {"topics": {}}
    ledger_sums: dict[str, int] = {}
    for topic in OUTPUT_TOPICS.values():
        expected = derived.get(topic, {})
        seen: dict[str, set[bytes]] = {}
        for record in read_topic(settings.broker, topic):
            doc = orjson.loads(record.value)
            record_id = output_id(topic, record.value, doc)
            if topic == LEDGER_TOPIC and record_id not in seen:
                ledger_sums[doc["customer_id"]] = ledger_sums.get(doc["customer_id"], 0) + doc["points"]
            seen.setdefault(record_id, set()).add(value_digest(record.value))
        missing = sorted(set(expected) - set(seen))
        extra = sorted(set(seen) - set(expected))
        different = sorted(i for i in set(seen) & set(expected) if seen[i] != {expected[i]})
        two_contents = sorted(i for i, digests in seen.items() if len(digests) > 1)
        report["topics"][topic] = {"expected": len(expected), "found": len(seen), "missing": len(missing),
                                   "extra": len(extra), "different": len(different), "two_contents": len(two_contents),
                                   "examples": {"missing": missing[:examples], "extra": extra[:examples],
                                                "different": different[:examples],
                                                "two_contents": two_contents[:examples]}}
    unbalanced = sorted(cid for cid, state in live.items() if state.points_balance != ledger_sums.get(cid, 0))
    unbalanced += sorted(cid for cid in ledger_sums if cid not in live and ledger_sums[cid] != 0)
    report["balance_not_ledger_sum"] = {"customers": len(unbalanced), "examples": unbalanced[:examples]}
    report["identical"] = not unbalanced and all(
        t["missing"] == t["extra"] == t["different"] == t["two_contents"] == 0 for t in report["topics"].values())
    return report


def state_differences(replayed: dict[str, CustomerState], live: dict[str, CustomerState]) -> list[dict]:
    """List, customer by customer, the fields whose values differ."""
    differences = []
    for customer_id in sorted(set(replayed) | set(live)):
        mine, theirs = replayed.get(customer_id), live.get(customer_id)
        if mine is None or theirs is None:
            differences.append({"customer_id": customer_id, "missing_in": "replay" if mine is None else "live"})
            continue
        a, b = mine.to_dict(), theirs.to_dict()
        fields = {k: {"replay": a[k], "live": b[k]} for k in a if a[k] != b.get(k)}
        if fields:
            differences.append({"customer_id": customer_id, "fields": fields})
    return differences


def print_differences(report: dict) -> None:
    """Print the verification verdict and the first differences."""
    outputs = report.get("outputs")
    if outputs is not None:
        for topic, found in outputs["topics"].items():
            if found["missing"] or found["extra"] or found["different"]:
                shown = [i for kind in ("missing", "extra", "different") for i in found["examples"][kind]]
                click.echo(f"verify: {topic}: {found['missing']} missing, {found['extra']} extra, "
                           f"{found['different']} different (of {found['expected']}); e.g. "
                           f"{', '.join(shown[:3])}", err=True)
            if found["two_contents"]:
                click.echo(f"verify: {topic}: {found['two_contents']} ids sent with two different contents, e.g. "
                           f"{', '.join(found['examples']['two_contents'][:3])}", err=True)
        unbalanced = outputs["balance_not_ledger_sum"]
        if unbalanced["customers"]:
            click.echo(f"verify: {unbalanced['customers']} customers' balance differs from the sum of their "
                       f"ledger entries, e.g. {', '.join(unbalanced['examples'][:3])}", err=True)
    for row in report.get("policy_differs", []):  # the likeliest cause of what follows: said first
        click.echo(f"verify: policy differs on partition {row['partition']}: the workers folded with "
                   f"{row['live']}, the log says {row['log']} (LOYALTY_POLICY, or publish the rules: "
                   f"docs/rules.md#policy-changes)", err=True)
    if report["identical"]:
        checked = "; every output on its topic, every balance the sum of its ledger" if outputs is not None else ""
        click.echo(f"verify: identical ({report['customers_compared']} customers){checked}")
        return
    if report["differences"]:
        click.echo(f"verify: {len(report['differences'])} customers differ", err=True)
    for diff in report["differences"][:20]:
        if "missing_in" in diff:
            click.echo(f"  {diff['customer_id']}: missing in {diff['missing_in']}", err=True)
            continue
        for name, values in diff["fields"].items():
            click.echo(f"  {diff['customer_id']}.{name}: replay {str(values['replay'])[:60]} "
                       f"!= live {str(values['live'])[:60]}", err=True)


def _why(before: CustomerState, after: CustomerState) -> list[str]:
    """Explain how one customer would differ."""
    reasons = []
    for name in ("tier", "status", "value", "points_balance"):
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            reasons.append(f"{name} {old} -> {new}")
    return reasons


def what_if_report(current, other, sample_size: int = 10) -> dict:
    """Compare two replays of the same log under the current and another policy."""
    before, after = Totals.of(current.states.values()), Totals.of(other.states.values())
    changed = []
    moves: Counter = Counter()
    for customer_id in sorted(current.states):
        reasons = _why(current.states[customer_id], other.states[customer_id])
        if reasons:
            changed.append({"customer_id": customer_id, "changes": reasons})
        for name in ("tier", "status", "value"):
            old, new = getattr(current.states[customer_id], name), getattr(other.states[customer_id], name)
            if old != new:
                moves[f"{name} {old} -> {new}"] += 1
    only_current, only_other = current.campaigns - other.campaigns, other.campaigns - current.campaigns
    return {
        "before": before.to_dict(), "after": after.to_dict(),
        "points_outstanding_change": after.points_outstanding - before.points_outstanding,
        "customers_changed": len(changed), "moves": dict(sorted(moves.items())),
        "campaigns": {"before": len(current.campaigns), "after": len(other.campaigns),
                      "no_longer_fired": len(only_current), "newly_fired": len(only_other),
                      "examples": sorted(only_current)[:5] + sorted(only_other)[:5],
                      "by_campaign": _campaigns_by_name(current.campaigns, other.campaigns)},
        "sample": changed[:sample_size],
    }


def _campaigns_by_name(current: set[str], other: set[str]) -> dict[str, dict[str, int]]:
    """Count, per campaign, the triggers under each policy and those only one of them fires."""
    report = {name: {"before": 0, "after": 0, "no_longer_fired": 0, "newly_fired": 0} for name in CAMPAIGNS}
    for trigger_ids, key in ((current, "before"), (other, "after"), (current - other, "no_longer_fired"),
                             (other - current, "newly_fired")):
        for trigger_id in trigger_ids:
            # trigger_id = "{campaign}:{customer_id}:{period}"; campaign names hold no colon
            report[trigger_id.split(":", 1)[0]][key] += 1
    return report


def print_what_if(report: dict) -> None:
    """Print the what-if report for people."""
    b, a = report["before"], report["after"]
    click.echo("what if (current policy -> proposed policy):")
    versions = report.get("policies")
    if versions:  # which rules were compared: the log's versions, and what the file made of them
        click.echo(f"  policy {', '.join(versions['log'])} -> {', '.join(versions['what_if'])}"
                   f"{' (whole file)' if versions['replace'] else ' (file over the log)'}"
                   f"{' from ' + versions['from'] if versions['from'] else ''}")
    for name in ("by_tier", "by_status", "by_value"):
        for key in b[name]:
            click.echo(f"  {name[3:]:<7}{key:<10}{b[name][key]:>9} -> {a[name][key]:<9}"
                       f"({a[name][key] - b[name][key]:+d})")
    click.echo(f"  points outstanding {b['points_outstanding']:>12} -> {a['points_outstanding']} "
               f"({report['points_outstanding_change']:+d})")
    c = report["campaigns"]
    click.echo(f"  campaigns fired    {c['before']:>12} -> {c['after']} "
               f"({c['newly_fired']} new, {c['no_longer_fired']} no longer)")
    for name, n in c["by_campaign"].items():
        click.echo(f"    {name:<16}{n['before']:>12} -> {n['after']:<9}({n['newly_fired']} new, "
                   f"{n['no_longer_fired']} no longer)")
    for move, count in report["moves"].items():
        click.echo(f"  {count:>6} customers: {move}")
    click.echo(f"  {report['customers_changed']} customers change; for example:")
    for row in report["sample"]:
        click.echo(f"    {row['customer_id']}: {'; '.join(row['changes'])}")
