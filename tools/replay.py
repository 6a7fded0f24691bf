"""`loyalty replay`: rebuild the projections from customer-events with the same fold the workers run."""
from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import click
import tomllib
from pydantic import ValidationError
import orjson

from projections.effects import CampaignTriggered
from projections.partition import MemoryStore, PartitionFold
from projections.policies import WhatIf, first_change
from projections.state import CustomerState
from projections.documents import Totals
from schemas.policy import Policy, PolicyError, load_policy
from schemas.policy_doc import policy_version
from schemas.timeutil import format_ms
from schemas.validate import Rejection, validate_record
from streams.gc_tuning import tune_gc
from streams.kafka_log import LogRecord, high_watermarks, read_log
from streams.settings import INPUT_TOPIC, TOPIC_OF, Settings
from tools.broker import wait_for_broker
from tools.cli_common import UserError
from tools.store import ReplayStore, StoreError, check_target
from tools.verify import (live_states, output_differences, output_id, print_differences, print_what_if,
                          state_differences, value_digest, what_if_report)

_PROGRESS_EVERY_S = 2.0


@dataclass
class ReplayResult:
    """What a replay rebuilt: states by customer, partition clocks, what it counted, and the outputs derived."""
    states: dict[str, CustomerState] = field(default_factory=dict)
    clocks_ms: dict[int, int] = field(default_factory=dict)
    versions: dict[int, str] = field(default_factory=dict)  # partition -> the policy version in force at the end
    records: int = 0
    rejected: int = 0
    campaigns: set[str] = field(default_factory=set)
    # With outputs on: output topic -> record id -> digest of the record's bytes (see output_digests).
    outputs: dict[str, dict[str, bytes]] = field(default_factory=dict)
    poisoned: dict[int, set[int]] = field(default_factory=dict)  # partition -> offsets whose fold raised
    # Instead of `states` when the caller needs no state objects: each state in its stored bytes, and their totals
    # (a process hands these back far faster than pickled states: docs/performance.md).
    encoded: dict[str, bytes] = field(default_factory=dict)
    totals: Optional[Totals] = None

    @property
    def customers(self) -> int:
        """How many customers the replay rebuilt."""
        return len(self.states) + len(self.encoded)

    def stats(self) -> Totals:
        """The totals of the states rebuilt."""
        return self.totals if self.totals is not None else Totals.of(self.states.values())

    def encode(self) -> None:
        """Keep the states as their stored bytes and their totals only."""
        self.totals = Totals.of(self.states.values())
        self.encoded = {customer_id: state.to_bytes() for customer_id, state in self.states.items()}
        self.states = {}

    def merge(self, other: "ReplayResult") -> None:
        """Add the result of other partitions."""
        self.states.update(other.states)
        self.encoded.update(other.encoded)
        if other.totals is not None:
            self.totals = self.totals or Totals()
            self.totals.merge(other.totals)
        self.clocks_ms.update(other.clocks_ms)
        self.versions.update(other.versions)
        self.records += other.records
        self.rejected += other.rejected
        self.campaigns |= other.campaigns
        for topic, records in other.outputs.items():
            self.outputs.setdefault(topic, {}).update(records)
        for partition, offsets in other.poisoned.items():
            self.poisoned.setdefault(partition, set()).update(offsets)


# Reads some partitions of the input log from their beginning: None means every partition of the job.
LogReader = Callable[[Optional[set[int]]], Iterable[LogRecord]]


def log_reader(settings: Settings, topic: str, ends: dict[int, int]) -> LogReader:
    """Return a reader of `topic` up to `ends`, for all or some partitions."""
    def read(partitions: Optional[set[int]]) -> Iterable[LogRecord]:
        chosen = ends if partitions is None else {p: end for p, end in ends.items() if p in partitions}
        return read_log(settings.broker, topic, chosen)
    return read


def fold_log(read: LogReader, policy: Policy, until_ms: Optional[int] = None,
             progress: Optional[dict[int, int]] = None, outputs: bool = False,
             what_if: Optional[WhatIf] = None) -> ReplayResult:
    """Fold the log per partition; with until_ms, stop each partition before its clock would pass it.

    A record whose fold raises is refused (the worker sends it to the DLQ as processing_error) and its
    partition is folded again from the start without it: the same result as the worker's rollback.
    `progress` ({partition: records to read}) turns on a progress line on stderr every few seconds;
    `outputs` collects the output records' ids and digests for `--verify`.
    """
    poisoned: dict[int, set[int]] = {}
    result, rerun = _fold_once(read(None), policy, until_ms, progress, outputs, poisoned, what_if)
    while rerun:
        again, rerun = _fold_once(read(rerun), policy, until_ms, None, outputs, poisoned, what_if)
        result.merge(again)
    result.poisoned = poisoned
    result.rejected += sum(len(offsets) for offsets in poisoned.values())
    return result


def _fold_once(records: Iterable[LogRecord], policy: Policy, until_ms: Optional[int],
               progress: Optional[dict[int, int]], outputs: bool, poisoned: dict[int, set[int]],
               what_if: Optional[WhatIf] = None) -> tuple[ReplayResult, set[int]]:
    """Fold records once; return the result of the partitions that finished, and those to fold again."""
    result = ReplayResult()
    folds: dict[int, PartitionFold] = {}
    stopped: set[int] = set()
    rerun: set[int] = set()
    read: dict[int, int] = {}
    folded: dict[int, int] = {}    # records taken per partition (not those past --until)
    rejected: dict[int, int] = {}
    derived = _DerivedOutputs() if outputs else None
    started = last_report = time.monotonic()
    for record in records:
        partition = record.partition
        read[partition] = read.get(partition, 0) + 1
        if partition in stopped:
            continue
        fold = folds.get(partition)
        if fold is None:
            fold = folds[partition] = PartitionFold(MemoryStore(), policy, what_if=what_if)
        folded[partition] = folded.get(partition, 0) + 1
        if record.offset in poisoned.get(partition, ()):
            continue
        event = validate_record(record.value, record.key, fold.policy, record.timestamp_ms)  # the policy in force
        if isinstance(event, Rejection):
            rejected[partition] = rejected.get(partition, 0) + 1
            continue
        if until_ms is not None and event.occurred_at_ms > until_ms and event.event_type != "policy.changed":
            stopped.add(partition)  # (a policy.changed moves no clock: its occurred_at is when it was published)
            continue
        try:
            _, effects = fold.apply(event, record.offset)
            if derived is not None:
                derived.add(partition, effects)
        except Exception:  # the worker refuses it too (processing_error): fold this partition again without it
            poisoned.setdefault(partition, set()).add(record.offset)
            stopped.add(partition)
            rerun.add(partition)
            continue
        result.campaigns.update(e.trigger_id for e in effects if isinstance(e, CampaignTriggered))
        if progress and time.monotonic() - last_report >= _PROGRESS_EVERY_S:
            last_report = time.monotonic()
            taken = sum(read.values())
            rate = taken / (last_report - started)
            done = sum(1 for p, total in progress.items() if read.get(p, 0) >= total)
            click.echo(f"replay (partitions {sorted(progress)}): {taken}/{sum(progress.values())} records, "
                       f"{rate:,.0f} records/s, {done}/{len(progress)} partitions done", err=True)
    for partition, fold in folds.items():
        if partition in rerun:
            continue
        if until_ms is not None:
            effects = fold.advance_clock(until_ms, None)
            result.campaigns.update(e.trigger_id for e in effects if isinstance(e, CampaignTriggered))
        result.states.update(fold.store)
        result.clocks_ms[partition] = fold.clock_ms
        result.versions[partition] = fold.schedule.in_force.version
        if derived is not None:
            for topic, records in derived.of(partition).items():
                result.outputs.setdefault(topic, {}).update(records)
    # The partitions folded again are counted by the next pass only.
    result.records = sum(count for p, count in folded.items() if p not in rerun)
    result.rejected = sum(count for p, count in rejected.items() if p not in rerun)
    return result, rerun


class _DerivedOutputs:
    """The output records a fold produced, per partition, as id -> digest (serialised like the worker's)."""

    def __init__(self) -> None:
        self._by_partition: dict[int, dict[str, dict[str, bytes]]] = {}

    def add(self, partition: int, effects: list) -> None:
        topics = self._by_partition.setdefault(partition, {})
        for effect in effects:
            topic = TOPIC_OF.get(type(effect))
            if topic is None:
                continue  # a notice is only counted
            value = orjson.dumps(effect.record)
            topics.setdefault(topic, {})[output_id(topic, value, effect.record)] = value_digest(value)

    def of(self, partition: int) -> dict[str, dict[str, bytes]]:
        return self._by_partition.get(partition, {})


def rebuild(settings: Settings, policy: Policy, until_ms: Optional[int], progress: bool,
            outputs: bool = False, what_if: Optional[WhatIf] = None,
            encoded: bool = False) -> tuple[ReplayResult, dict]:
    """Read the input log up to its current end and fold it; return the result and the ends read.

    Partitions are independent, so they are spread over one process per core, balanced by their
    records. With `encoded`, the result holds the states' bytes and totals, not state objects.
    """
    ends = high_watermarks(settings.broker, INPUT_TOPIC)
    groups = balanced_groups(ends, min(os.cpu_count() or 1, len(ends)))
    jobs = [(settings, policy, until_ms, group, progress, outputs, what_if, encoded) for group in groups]
    if len(jobs) <= 1:
        return _rebuild_partitions(*jobs[0]), ends
    with ProcessPoolExecutor(len(jobs), mp_context=multiprocessing.get_context("fork")) as pool:
        parts = list(pool.map(_rebuild_partitions, *zip(*jobs)))
    result = ReplayResult()
    for part in parts:
        result.merge(part)
    return result, ends


def balanced_groups(ends: dict[int, int], processes: int) -> list[dict[int, int]]:
    """Spread partitions over processes, the largest first to the least loaded, so that they finish together."""
    groups: list[dict[int, int]] = [{} for _ in range(max(processes, 1))]
    loads = [0] * len(groups)
    for partition, end in sorted(ends.items(), key=lambda item: (-item[1], item[0])):
        least = loads.index(min(loads))
        groups[least][partition] = end
        loads[least] += end
    return [dict(sorted(group.items())) for group in groups]


def _rebuild_partitions(settings: Settings, policy: Policy, until_ms: Optional[int], ends: dict[int, int],
                        progress: bool, outputs: bool, what_if: Optional[WhatIf] = None,
                        encoded: bool = False) -> ReplayResult:
    """Fold some partitions of the input log (in a worker process)."""
    tune_gc()  # the replay holds every state in memory: default full collections would traverse them all
    result = fold_log(log_reader(settings, INPUT_TOPIC, ends), policy, until_ms, ends if progress else None,
                      outputs, what_if)
    if encoded:
        result.encode()
    return result


def run_replay(settings: Settings, out: Optional[str], until_ms: Optional[int], policy_file: Optional[str],
               verify: bool, as_json: bool, policy_replace: bool = False, policy_from_ms: Optional[int] = None) -> bool:
    """Run `loyalty replay`; return False when verification found differences.

    Without `out`, a plain replay writes ./replay; `--verify` and `--policy` write no store at all.
    """
    if out is None and not verify and not policy_file:
        out = "./replay"
    if out is not None:
        _check_out(out)  # before the long rebuild, so a refused --out costs nothing
    current_policy = load_policy(settings.policy_file)
    wait_for_broker(settings.broker, timeout_s=10, say=lambda line: click.echo(f"replay: {line}", err=True))
    other_policy = what_if_of(policy_file, current_policy, policy_replace, policy_from_ms) if policy_file else None
    started = time.monotonic()
    # Outputs are checked against a whole log only: with --until the topics hold more than the replay.
    check_outputs = verify and until_ms is None
    # State objects only where they are compared; a plain replay takes the stored bytes from each process.
    result, ends = rebuild(settings, current_policy, until_ms, progress=not as_json, outputs=check_outputs,
                           encoded=not verify and other_policy is None)
    seconds = time.monotonic() - started
    if out is not None:
        _write_store(out, result, until_ms, current_policy, ends)
    summary = {"records": result.records, "rejected": result.rejected, "customers": result.customers,
               "partitions": len(ends), "seconds": round(seconds, 3),
               "records_per_second": round(result.records / seconds) if seconds else None,
               "events_per_second": round(result.records / seconds) if seconds else None,  # the old name of the same
               "until": format_ms(until_ms) if until_ms else None, "out": out,
               "stats": {**result.stats().to_dict(),
                         "policy_versions": policy_versions(result, ends, current_policy)}}
    ok = True
    if verify:
        live_versions: dict[int, str] = {}
        live = live_states(settings, ends, live_versions)
        policy_rows = policy_differences(result, live_versions, current_policy) if until_ms is None else []
        differences = state_differences(result.states, live)
        outputs = output_differences(settings, result.outputs, live) if check_outputs else None
        ok = not differences and not policy_rows and (outputs is None or outputs["identical"])
        summary["verify"] = {"identical": ok, "policy_differs": policy_rows, "differences": differences[:100],
                             "customers_compared": len(set(result.states) | set(live)), "outputs": outputs}
    if other_policy is not None:
        other, _ = rebuild(settings, current_policy, until_ms, progress=False, what_if=other_policy)
        summary["what_if"] = what_if_report(result, other)
        summary["what_if"]["policies"] = {"log": sorted(set(result.versions.values())),
                                          "what_if": sorted(set(other.versions.values())),
                                          "file": policy_file, "replace": policy_replace,
                                          "from": format_ms(policy_from_ms) if policy_from_ms else None}
    if as_json:
        click.echo(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
        return ok
    where = f"-> {out}" if out else "(no store written; --out DIR keeps one)"
    click.echo(f"replayed {result.records} records ({result.rejected} rejected) from {len(ends)} partitions "
               f"in {seconds:.2f}s ({summary['records_per_second'] or 0:,} records/s): "
               f"{result.customers} customers {where}")
    if verify:
        print_differences(summary["verify"])
    if other_policy is not None:
        print_what_if(summary["what_if"])
    return ok


def what_if_of(policy_file: str, current: Policy, replace: bool, from_ms: Optional[int]) -> WhatIf:
    """Read a what-if file: checked whole (--policy-replace) or over the current policy, as the loader would."""
    load_policy(policy_file)  # the loader's own errors first (missing file, TOML, unknown keys)
    with open(policy_file, "rb") as handle:
        what_if = WhatIf(tomllib.load(handle), replace, from_ms or 0)
    try:
        what_if.shape(first_change(current))
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        raise PolicyError(f"{policy_file} over the current policy: {'.'.join(map(str, err['loc']))}: "
                          f"{err['msg']}") from None
    return what_if


def policy_versions(result: ReplayResult, ends: dict, first: Policy) -> list[str]:
    """Return the versions in force at the end, as /stats lists them (a partition without records: the first)."""
    versions = set(result.versions.values())
    if set(ends) - set(result.versions):
        versions.add(policy_version(first))
    return sorted(versions)


def policy_differences(result: ReplayResult, live: dict[int, str], first: Policy) -> list[dict]:
    """Return the partitions whose workers folded with another policy version than the log gives."""
    first_version = policy_version(first)
    return [{"partition": p, "live": version, "log": result.versions.get(p, first_version)}
            for p, version in sorted(live.items()) if version != result.versions.get(p, first_version)]


def _check_out(out: str) -> None:
    """Refuse an --out that is not a new directory or an earlier replay store (exit 2)."""
    try:
        check_target(Path(out))
    except StoreError as exc:
        raise UserError(str(exc)) from None


def _write_store(out: str, result: ReplayResult, until_ms: Optional[int], policy: Policy, ends: dict) -> None:
    """Write the replayed states and their metadata into a fresh replay store."""
    try:
        store = ReplayStore.fresh(Path(out))
    except StoreError as exc:  # the directory changed during the rebuild
        raise UserError(str(exc)) from None
    try:
        states = result.encoded or {customer_id: state.to_bytes() for customer_id, state in result.states.items()}
        store.write(states, {"until": format_ms(until_ms) if until_ms else None, "records": result.records,
                                    "clocks": {str(p): c for p, c in sorted(result.clocks_ms.items())},
                                    # the policy version of each partition, for the answers read from the store
                                    "partitions": len(ends), "policy_versions": policy_versions(result, ends, policy),
                                    "versions": {str(p): v for p, v in sorted(result.versions.items())},
                                    "policy": policy.model_dump(mode="json")})  # for `explain --store`
    finally:
        store.close()
