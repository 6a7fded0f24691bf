"""The benchmark's one table: every figure of the run, the ratios between them, as text or as data."""
from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Optional


@dataclass
class Row:
    """One measured figure; `value` None means not measured, and `note` says why."""
    key: str
    section: str
    measure: str
    unit: str
    value: Optional[float] = None
    note: str = ""


# The ratios: key -> (measure, numerator row, denominator row).
RATIOS = {
    "ratio_worker_in_process": ("1 worker / (validation + fold in process)", "worker_1", "validation_fold"),
    "ratio_worker_loop": ("1 worker / hand-written aiokafka loop", "worker_1", "peer_loop"),
    "ratio_worker_quix": ("1 worker / Quix Streams app", "worker_1", "peer_quix"),
    # CPU µs per record: the floor's over the step's is the step's rate over the floor's.
    "ratio_step_floor": ("worker step / floor, in records per CPU second", "floor", "worker_step"),
    "ratio_replay_raw": ("loyalty replay / raw consumer read", "replay", "raw_read"),
}


def _rows(tick_customers: int, tick_due: int, tick_small: int, policy_customers: int, rebuild: int) -> list[Row]:
    """Every row of the table, in order, not measured yet."""
    return [
        Row("produce", "produce", "loyalty produce of the backlog from a JSON-lines file (a tick is one line)",
            "events/s"),
        Row("raw_read", "limits", "raw consumer read of customer-events (aiokafka getmany)", "records/s"),
        Row("validation", "limits", "validation in process (orjson, fast path or pydantic, one core)", "records/s"),
        Row("fold", "limits", "fold in process (PartitionFold, one core)", "events/s"),
        Row("validation_fold", "limits", "validation + fold in process (one pass, one core)", "events/s"),
        Row("worker_step", "limits", "worker step in process: validate, fold, outputs, changelog, RocksDB (CPU)",
            "µs/record"),
        Row("floor", "limits", "floor: orjson, dict update, state dumps, WriteBatch, one output each (CPU)",
            "µs/record"),
        Row("state_decode", "limits", "state decode, one stored state of the worker step (CPU)", "µs"),
        Row("state_encode", "limits", "state encode, one state of the worker step (CPU)", "µs"),
        Row("worker_1", "worker", "1 loyalty worker on the backlog, steady", "events/s"),
        Row("worker_2", "worker", "2 loyalty workers on the backlog, steady", "events/s"),
        Row("latency_p50", "latency", "produce -> ledger entry, p50 (1 worker, half its steady rate)", "ms"),
        Row("latency_p99", "latency", "produce -> ledger entry, p99 (1 worker, half its steady rate)", "ms"),
        Row("command_rate", "checkout", "HTTP redemptions answered, 1 worker, 250/s offered while events stream in",
            "commands/s"),
        Row("command_p50", "checkout", "HTTP redemption -> its answer, p50 (target p99 < 100 ms)", "ms"),
        Row("command_p99", "checkout", "HTTP redemption -> its answer, p99 (target p99 < 100 ms)", "ms"),
        Row("replay", "replay", "loyalty replay (one process per core)", "records/s"),
        Row("peer_loop", "peers", "hand-written aiokafka loop (getmany, fold, rocksdict, send, commit)", "events/s"),
        Row("peer_quix", "peers", "Quix Streams app (per-key state in its RocksDB store)", "events/s"),
        Row("worker_peak_rss", "resources", "1 worker, peak RSS (backlog and latency run)", "MB"),
        Row("state_store_median", "resources", "state per customer in the worker's store, median", "bytes"),
        Row("state_store_max", "resources", "state per customer in the worker's store, max", "bytes"),
        Row("state_changelog_median", "resources", "state per customer on the changelog, median", "bytes"),
        Row("state_changelog_max", "resources", "state per customer on the changelog, max", "bytes"),
        Row("state_heavy_1y", "resources", "state of a customer with 10 events (1 order) a day, after 1 year",
            "bytes"),
        Row("state_heavy_2y", "resources", "state of a customer with 10 events (1 order) a day, after 2 years",
            "bytes"),
        Row("tick_large", "resources", f"one tick, {tick_due:,} due of {tick_customers:,} customers (in process)",
            "ms"),
        Row("tick_small", "resources", f"one tick, {tick_due:,} due of {tick_small:,} customers (in process)", "ms"),
        Row("policy_change", "resources", f"policy change: re-evaluate {policy_customers:,} customers of one "
            "partition, none cached (in process)", "s"),
        Row("rebuild_seconds", "recovery", f"a worker rebuilding {rebuild:,} customers from the changelog "
            "(data dir lost): start -> every partition loaded", "s"),
        Row("rebuild_rate", "recovery", "the same, customers per second", "customers/s"),
        *(Row(key, "ratios", measure, "x") for key, (measure, _, _) in RATIOS.items()),
    ]


class Report:
    """The rows of one run, filled in as the phases measure them."""

    def __init__(self, options: dict, tick_small: int) -> None:
        self.options = options
        self.started = datetime.now(timezone.utc)
        self.backlog: dict = {}
        self.rows = {row.key: row for row in _rows(options["tick_customers"], options["tick_due"], tick_small,
                                                   options["policy_customers"],
                                                   options["rebuild_customers"])}

    def set(self, key: str, value: float, note: str = "") -> None:
        """Record a measured figure."""
        row = self.rows[key]
        row.value, row.note = float(value), note

    def missing(self, keys: list[str], reason: str) -> None:
        """Mark figures that could not be measured, with the reason."""
        for key in keys:
            if self.rows[key].value is None:
                self.rows[key].note = reason

    def compute_ratios(self) -> None:
        """Fill in the ratios from the figures they divide."""
        for key, (_, top, bottom) in RATIOS.items():
            a, b = self.rows[top].value, self.rows[bottom].value
            if a is not None and b:
                self.set(key, a / b)
            else:
                self.missing([key], f"needs {top} and {bottom}")

    @property
    def complete(self) -> bool:
        """True when every row was measured."""
        return all(row.value is not None for row in self.rows.values())

    def machine(self) -> dict:
        """Where it ran."""
        return {"cores": os.cpu_count(), "system": f"{platform.system()} {platform.machine()}",
                "python": platform.python_version(), "broker": "embedded (tansu), on the same machine"}

    def to_dict(self) -> dict:
        """The report as data (`loyalty bench --json`)."""
        return {"date": self.started.isoformat(timespec="seconds"), "machine": self.machine(),
                "options": self.options, "backlog": self.backlog, "complete": self.complete,
                "rows": [asdict(row) for row in self.rows.values()]}

    def to_text(self) -> str:
        """The report as one table."""
        machine = self.machine()
        lines = [f"loyalty bench, {self.started:%Y-%m-%d %H:%M} UTC: {machine['system']}, {machine['cores']} cores, "
                 f"Python {machine['python']}, {machine['broker']}",
                 f"backlog: {self.options['events']:,} events over {self.options['customers']:,} customers "
                 f"with daily ticks, {self.backlog.get('records', 0):,} records in {self.options['partitions']} "
                 f"partitions; events/s counts customer events applied (not ticks)", ""]
        width = max(len(row.measure) for row in self.rows.values())
        lines.append(f"{'section':<10} {'measure':<{width}} {'value':>12}  unit")
        for row in self.rows.values():
            value = "n/a" if row.value is None else _number(row.value)
            note = f"  ({row.note})" if row.note else ""
            unit = row.unit if row.value is not None else ""
            lines.append(f"{row.section:<10} {row.measure:<{width}} {value:>12}  {unit}{note}".rstrip())
        return "\n".join(lines)


def _number(value: float) -> str:
    """Large figures with thousands separators, small ones with three significant digits."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"
