"""`loyalty produce` skips a line the producer or the broker finds too large and sends every other line."""
from __future__ import annotations

import pytest
from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from kafka.future import Future

import tools.produce
from streams.settings import Settings
from tools.produce import ProduceError, send_lines

CLIENT_LIMIT, BROKER_LIMIT = 1000, 500


class FakeProducer:
    """Refuses a value over CLIENT_LIMIT at send() (as max_request_size does), over BROKER_LIMIT at flush()."""

    def __init__(self, error: Exception = MessageSizeTooLargeError()) -> None:
        self.error = error
        self.sent: list[bytes] = []
        self.pending: list[tuple[Future, bytes]] = []

    def partitions_for(self, topic):
        return {0, 1}

    def send(self, topic, key=None, value=None, partition=None):
        if len(value) > CLIENT_LIMIT:
            raise MessageSizeTooLargeError(f"The message is {len(value)} bytes")
        future = Future()
        self.pending.append((future, value))
        return future

    def flush(self, timeout=None):
        for future, value in self.pending:
            if len(value) > BROKER_LIMIT:
                future.failure(self.error)
            else:
                self.sent.append(value)
                future.success(None)

    def close(self, timeout=None):
        pass


@pytest.fixture
def producer(monkeypatch):
    fake = FakeProducer()
    monkeypatch.setattr(tools.produce, "open_producer", lambda settings: fake)
    return fake


def line(n: int, size: int = 20) -> bytes:
    return (b'{"customer_id": "c%d", "pad": "' % n).ljust(size, b"x") + b'"}'


def test_too_large_lines_are_reported_with_their_number_and_the_rest_is_sent(producer):
    lines = [line(1), line(2, 2000), b"", line(3), line(4, 700), line(5)]
    reports = []
    sent = send_lines(Settings(), lines, on_skip=lambda number, message: reports.append((number, message)))
    assert sent == 3 and producer.sent == [line(1), line(3), line(5)]
    assert reports == [(2, f"line 2: {len(line(2, 2000)):,} bytes is over the broker's message size limit; skipped"),
                       (5, f"line 5: {len(line(4, 700)):,} bytes was refused by the broker as too large; skipped")]


def test_without_a_reporter_skipped_lines_are_an_error_after_the_rest_is_sent(producer):
    with pytest.raises(ProduceError, match="1 line.* skipped, e.g. line 1: "):
        send_lines(Settings(), [line(1, 2000), line(2)])
    assert producer.sent == [line(2)]


def test_a_tick_refused_by_every_partition_is_one_skipped_line(producer):
    tick = b'{"event_type": "clock.tick", "pad": "' + b"x" * 600 + b'"}'
    reports = []
    assert send_lines(Settings(), [tick, line(1)], on_skip=lambda n, m: reports.append(n)) == 1
    assert reports == [1]


def test_other_broker_errors_are_not_silently_lost(monkeypatch):
    fake = FakeProducer(KafkaTimeoutError("no answer"))
    monkeypatch.setattr(tools.produce, "open_producer", lambda settings: fake)
    with pytest.raises(ProduceError, match="did not accept line 2"):
        send_lines(Settings(), [line(1), line(2, 700)], on_skip=lambda n, m: None)
