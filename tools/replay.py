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
from projections.isolation import Poisoned, PoisonedRecord, apply_isolated, fold_batch
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
_NONE: Poisoned = {}  # the first pass refuses no record by offset


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

    Each partition's log is one batch of projections.isolation.fold_batch, the worker's isolation: a record
    whose fold raises is refused (the worker sends it to the DLQ as processing_error), and its partition is
    rolled back and folded again without it, read from the log again. `progress` ({partition: records to
    read}) turns on a progress line on stderr every few seconds; `outputs` collects the output records' ids
    and digests for `--verify`.
    """
    parts: dict[int, _Partition] = {}
    poisoned: dict[int, Poisoned] = {}
    started = last_report = time.monotonic()
    read_counts: dict[int, int] = {}
    for record in read(None):  # every partition of the job in one pass; a poisoned one is folded again below
        part = parts.get(record.partition)
        if part is None:
            part = parts[record.partition] = _Partition(PartitionFold(MemoryStore(), policy, what_if=what_if),
                                                        until_ms, outputs)
            part.fold.begin_batch()
        read_counts[record.partition] = read_counts.get(record.partition, 0) + 1
        if record.partition in poisoned:
            continue
        try:
            part.take(record, _NONE)
        except PoisonedRecord as poison:
            part.fold.rollback()
            poisoned[record.partition] = {poison.offset: poison.error}
        if progress and time.monotonic() - last_report >= _PROGRESS_EVERY_S:
            last_report = time.monotonic()
            _report(progress, read_counts, last_report - started)
    for partition, known in sorted(poisoned.items()):
        part = parts[partition]
        fold_batch(part.fold, lambda refused: part.again().take_all(read({partition}), partition, refused), known)
    result = ReplayResult()
    for partition, part in parts.items():
        part.end(partition, result)
    result.poisoned = {partition: set(known) for partition, known in poisoned.items()}
    return result


def _report(progress: dict[int, int], read_counts: dict[int, int], seconds: float) -> None:
    """Print a progress line of a replay: records read of those to read, their rate, and partitions done."""
    taken = sum(read_counts.values())
    done = sum(1 for p, total in progress.items() if read_counts.get(p, 0) >= total)
    click.echo(f"replay (partitions {sorted(progress)}): {taken}/{sum(progress.values())} records, "
               f"{taken / seconds:,.0f} records/s, {done}/{len(progress)} partitions done", err=True)


class _Partition:
    """One partition's fold in a replay, and what its pass has counted (reset when it is folded again)."""

    def __init__(self, fold: PartitionFold, until_ms: Optional[int], outputs: bool) -> None:
        self.fold, self.until_ms, self.outputs = fold, until_ms, outputs
        self.again()

    def again(self) -> "_Partition":
        """Forget what a pass counted (the fold itself was rolled back)."""
        self.stopped = False
        self.records = self.rejected = 0
        self.campaigns: set[str] = set()
        self.derived = _DerivedOutputs() if self.outputs else None
        return self

    def take_all(self, records: Iterable[LogRecord], partition: int, refused: Poisoned) -> None:
        """Fold the partition's records (a reader may yield others: they are skipped)."""
        for record in records:
            if record.partition == partition:
                self.take(record, refused)

    def take(self, record: LogRecord, refused: Poisoned) -> None:
        """Validate and fold one record, refusing it if it is in `refused`; raise PoisonedRecord if its fold raises."""
        if self.stopped:
            return
        fold = self.fold
        self.records += 1
        if record.offset in refused:
            self.rejected += 1
            return
        event = validate_record(record.value, record.key, fold.policy, record.timestamp_ms)  # the policy in force
        if isinstance(event, Rejection):
            self.rejected += 1
            return
        if self.until_ms is not None and event.occurred_at_ms > self.until_ms and event.event_type != "policy.changed":
            self.stopped = True  # (a policy.changed moves no clock: its occurred_at is when it was published)
            return
        _, effects = apply_isolated(fold, event, record.offset)
        if self.derived is not None:
            try:
                self.derived.add(effects)
            except Exception as exc:  # the worker refuses what it cannot serialise too
                raise PoisonedRecord(record.offset, exc) from exc
        self.campaigns.update(e.trigger_id for e in effects if isinstance(e, CampaignTriggered))

    def end(self, partition: int, result: ReplayResult) -> None:
        """Add the partition's states, clock, counts and outputs to the result."""
        fold = self.fold
        if self.until_ms is not None:
            effects = fold.advance_clock(self.until_ms, None)
            self.campaigns.update(e.trigger_id for e in effects if isinstance(e, CampaignTriggered))
        result.states.update(fold.store)
        result.clocks_ms[partition] = fold.clock_ms
        result.versions[partition] = fold.schedule.in_force.version
        result.records += self.records
        result.rejected += self.rejected
        result.campaigns |= self.campaigns
        if self.derived is not None:
            for topic, records in self.derived.topics.items():
                result.outputs.setdefault(topic, {}).update(records)


class _DerivedOutputs:
    """The output records a partition's fold produced, as topic -> id -> digest (serialised like the worker's)."""

    def __init__(self) -> None:
        self.topics: dict[str, dict[str, bytes]] = {}

    def add(self, effects: list) -> None:
        for effect in effects:
            topic = TOPIC_OF.get(type(effect))
            if topic is None:
                continue  # a notice is only counted
            value = orjson.dumps(effect.record)
            self.topics.setdefault(topic, {})[output_id(topic, value, effect.record)] = value_digest(value)


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
