"""Long waits say what they wait for, once, and then how far they got; a recovering worker is named as such."""
from __future__ import annotations

from tests.fixtures.fake_worker import serve

import http.server

import pytest
from click.testing import CliRunner
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

import tools.verify
from streams.settings import INPUT_TOPIC, Settings
from tools.broker import BrokerError, free_port, wait_for_broker
from tools.cli import main
from tools.query import QueryError


class _NoAdmin:
    """Stands in for KafkaAdminClient: wait_for_workers only closes it (the offsets come from the fake below)."""

    def __init__(self, **_):
        pass

    def close(self):
        pass


def _committed_after(polls: int, ends: dict[int, int]):
    """Return a fake of _committed_offsets: nothing committed for `polls` calls, then everything."""
    calls = []

    def committed(admin, group_id, wanted):
        calls.append(group_id)
        if len(calls) <= polls:
            return {}
        return {TopicPartition(INPUT_TOPIC, p): OffsetAndMetadata(end, "", -1) for p, end in ends.items()}
    return committed


@pytest.fixture
def fast_progress(monkeypatch):
    monkeypatch.setattr(tools.verify, "KafkaAdminClient", _NoAdmin)
    monkeypatch.setattr(tools.verify, "_PROGRESS_EVERY_S", 0.3)


def test_waiting_for_the_workers_says_what_for_once_then_reports_progress(fast_progress, monkeypatch, capsys):
    ends = {0: 7, 1: 0, 2: 5}
    monkeypatch.setattr(tools.verify, "_committed_offsets", _committed_after(6, ends))  # about 1.2 s of waiting
    tools.verify.wait_for_workers(Settings(app_id="shop"), ends, timeout_s=30)
    lines = capsys.readouterr().err.splitlines()
    assert len([line for line in lines if "waiting up to 30s" in line]) == 1
    assert "group 'shop'" in lines[0] and "12 not yet" in lines[0] and "[0, 2]" in lines[0]
    assert any("12 records not yet committed" in line for line in lines[1:]), lines


def test_workers_that_caught_up_are_not_waited_for_in_silence_or_aloud(fast_progress, monkeypatch, capsys):
    ends = {0: 3}
    monkeypatch.setattr(tools.verify, "_committed_offsets", _committed_after(0, ends))
    tools.verify.wait_for_workers(Settings(app_id="shop"), ends, timeout_s=30)
    assert capsys.readouterr().err == ""


def test_no_worker_at_all_ends_with_a_question_after_saying_what_it_waited_for(fast_progress, monkeypatch, capsys):
    monkeypatch.setattr(tools.verify, "_committed_offsets", lambda *_: {})
    with pytest.raises(QueryError, match="is a worker running"):
        tools.verify.wait_for_workers(Settings(app_id="shop"), {0: 1}, timeout_s=0.7)
    assert "waiting up to 0.7s for the workers of group 'shop'" in capsys.readouterr().err


def test_waiting_for_a_broker_says_so_before_giving_up():
    said: list[str] = []
    port = free_port()
    with pytest.raises(BrokerError):
        wait_for_broker(f"127.0.0.1:{port}", timeout_s=0.5, say=said.append)
    assert said == [f"waiting up to 0.5s for a Kafka broker at 127.0.0.1:{port} (--broker / LOYALTY_BROKER)"]


class _Recovering(http.server.BaseHTTPRequestHandler):
    """A worker that is still recovering its partitions, as streams/http_views.py answers then."""

    def do_GET(self):
        body = b'{"error": "recovering"}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def recovering_worker():
    with serve(_Recovering) as url:
        yield url


@pytest.mark.parametrize("args", [("stats",), ("customer", "c1"), ("segment", "--status", "active")])
def test_a_503_from_a_recovering_worker_reads_as_retry_in_a_moment(recovering_worker, args):
    result = CliRunner().invoke(main, ["query", *args, "--url", recovering_worker])
    assert result.exit_code == 2
    assert "worker is recovering its state" in result.output and "retry in a moment" in result.output
    assert "HTTP 503" not in result.output and len(result.output.strip().splitlines()) == 1


def test_an_untested_faust_is_refused_at_once_not_after_waiting_for_the_broker(monkeypatch, tmp_path):
    import streams.faust_version
    import tools.broker

    def no_wait(*_, **__):
        raise AssertionError("the worker waited for the broker before checking its Faust version")
    monkeypatch.setattr(streams.faust_version.metadata, "version", lambda name: "0.14.9")
    monkeypatch.setattr(tools.broker, "wait_for_broker", no_wait)
    result = CliRunner().invoke(main, ["worker", "--broker", f"localhost:{free_port()}", "--data-dir",
                                       str(tmp_path / "data"), "--web-port", str(free_port())])
    assert result.exit_code == 2, result.output
    assert "faust-streaming 0.14.9 is installed" in result.output
    assert "Traceback" not in result.output
