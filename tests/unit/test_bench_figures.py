"""How `loyalty bench` turns what it observed into figures: steady rates, percentiles, ratios and n/a rows."""
from __future__ import annotations

import io
from dataclasses import asdict

import pytest

from bench.latency import _percentile
from bench.peer_common import PeerClock
from bench.progress import Progress
from bench.report import Report
from bench.run import BenchOptions
from bench.workers import BenchError, Sample, steady_rate


def test_the_steady_rate_leaves_out_start_up_and_the_first_batch():
    # Nothing for 5 s (start-up), then 1,000 events per second from t=10 to t=20.
    samples = [Sample(0.0, 0), Sample(5.0, 0), Sample(10.0, 5_000), Sample(15.0, 10_000), Sample(20.0, 15_000)]
    assert steady_rate(samples) == 1_000


def test_a_backlog_done_in_one_batch_is_timed_from_the_last_sample_that_saw_nothing():
    assert steady_rate([Sample(1.0, 0), Sample(3.0, 0), Sample(5.0, 4_000)]) == 2_000
    with pytest.raises(BenchError):
        steady_rate([Sample(5.0, 4_000)])


def test_a_peer_is_timed_from_its_first_applied_batch_to_its_last(monkeypatch):
    times = iter([10.0, 12.0, 14.0])
    monkeypatch.setattr("bench.peer_common.time.monotonic", lambda: next(times))
    clock = PeerClock()
    clock.applied(0)  # an empty fetch is no start
    for count in (500, 1_000, 1_000):
        clock.applied(count)
    assert clock.total == 2_500
    assert clock.rate(started_s=0.0) == 2_000 / 4.0


def test_percentiles_are_nearest_rank():
    ordered = list(range(1, 101))  # 1..100 ms
    assert _percentile(ordered, 0.50) == 50
    assert _percentile(ordered, 0.99) == 99
    assert _percentile([7], 0.99) == 7


def _report() -> Report:
    return Report(asdict(BenchOptions()), tick_small=10_000)


def test_ratios_divide_the_figures_they_name_and_a_missing_one_says_what_it_needs():
    report = _report()
    report.set("worker_1", 5_000)
    report.set("validation_fold", 20_000)
    report.set("peer_loop", 10_000)
    report.missing(["peer_quix"], "quixstreams is not installed")
    report.compute_ratios()
    assert report.rows["ratio_worker_in_process"].value == 0.25
    assert report.rows["ratio_worker_loop"].value == 0.5
    assert report.rows["ratio_worker_quix"].value is None
    assert "peer_quix" in report.rows["ratio_worker_quix"].note
    assert report.complete is False


def test_the_table_shows_every_row_and_why_one_is_missing():
    report = _report()
    for key in report.rows:
        report.set(key, 1.5)
    report.rows["peer_quix"].value = None
    report.missing(["peer_quix"], "quixstreams is not installed")
    text = report.to_text()
    assert all(row.measure in text for row in report.rows.values())
    quix = next(line for line in text.splitlines() if "Quix" in line)
    assert "n/a" in quix and "quixstreams is not installed" in quix
    assert "1,000 due of 1,000,000 customers" in text
    data = report.to_dict()
    assert [row["key"] for row in data["rows"]] == list(report.rows)
    assert data["complete"] is False


def test_progress_off_a_terminal_writes_plain_lines_without_escape_codes():
    stream = io.StringIO()
    progress = Progress(3, stream=stream)
    progress.phase("backlog")
    progress.update("10/20 events sent")  # throttled: within a few seconds of the phase line
    progress.done("20 events sent")
    lines = stream.getvalue().splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == ["backlog ...", "backlog: 20 events sent"]
    assert "\x1b" not in stream.getvalue() and "\r" not in stream.getvalue()
