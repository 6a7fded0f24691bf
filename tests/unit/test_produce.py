"""`loyalty produce` skips a line the producer or the broker finds too large and sends every other line in order."""
from __future__ import annotations

import asyncio
import threading

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

import tools.bulk_send
from streams.settings import Settings
from tools.produce import ProduceError, send_lines

CLIENT_LIMIT, BROKER_LIMIT, BATCH_RECORDS = 1000, 500, 3


class FakeBatch:
    """Holds up to BATCH_RECORDS records, as a record batch holds up to its size."""

    def __init__(self) -> None:
        self.records: list[tuple] = []

    def append(self, key, value, timestamp):
        if len(self.records) >= BATCH_RECORDS:
            return None
        self.records.append((key, value))
        return object()

    def close(self) -> None:
        pass


class FakeProducer:
    """Refuses a whole batch holding a value over BROKER_LIMIT (as the broker's max.message.bytes does)."""

    def __init__(self, error: Exception = MessageSizeTooLargeError()) -> None:
        self.error = error
        self.sent: dict[int, list[bytes]] = {0: [], 1: []}
        self.batches = 0

    async def start(self):
        pass

    async def stop(self):
        pass

    async def partitions_for(self, topic):
        return {0, 1}

    def create_batch(self):
        return FakeBatch()

    async def send_batch(self, batch, topic, partition):
        future = asyncio.get_running_loop().create_future()
        if any(len(value) > BROKER_LIMIT for _, value in batch.records):
            future.set_exception(self.error)
        else:
            self.batches += 1
            self.sent[partition].extend(value for _, value in batch.records)
            future.set_result(None)
        return future


@pytest.fixture
def producer(monkeypatch):
    fake = FakeProducer()
    monkeypatch.setattr(tools.bulk_send, "open_bulk_producer", lambda settings: fake)
    monkeypatch.setattr(tools.bulk_send, "MAX_REQUEST_BYTES", CLIENT_LIMIT)
    return fake


def line(n: int, size: int = 20) -> bytes:
    return (b'{"customer_id": "c%d", "pad": "' % n).ljust(size, b"x") + b'"}'


def everything(producer: FakeProducer) -> list[bytes]:
    return sorted(producer.sent[0] + producer.sent[1])


def test_too_large_lines_are_reported_with_their_number_and_the_rest_is_sent(producer):
    lines = [line(1), line(2, 2000), b"", line(3), line(4, 700), line(5)]
    reports = []
    sent = send_lines(Settings(), lines, on_skip=lambda number, message: reports.append((number, message)))
    assert sent == 3 and everything(producer) == sorted([line(1), line(3), line(5)])
    assert reports == [(2, f"line 2: {len(line(2, 2000)):,} bytes is over the broker's message size limit; skipped"),
                       (5, f"line 5: {len(line(4, 700)):,} bytes was refused by the broker as too large; skipped")]


def test_a_refused_batch_is_sent_again_record_by_record_in_order(producer):
    lines = [line(n % 2, 20 + n) if n != 7 else line(1, 700) for n in range(20)]
    reports = []
    assert send_lines(Settings(), lines, on_skip=lambda number, message: reports.append(number)) == 19
    assert reports == [8]
    for partition, values in producer.sent.items():  # each partition's lines in file order
        assert values == [value for value in lines if value in values] and values
    assert producer.batches < 19  # batched, not one record a send


def test_without_a_reporter_skipped_lines_are_an_error_after_the_rest_is_sent(producer):
    with pytest.raises(ProduceError, match="1 line.* skipped, e.g. line 1: "):
        send_lines(Settings(), [line(1, 2000), line(2)])
    assert everything(producer) == [line(2)]


def test_a_tick_goes_to_every_partition_and_one_refused_by_every_partition_is_one_skipped_line(producer):
    small = b'{"event_type": "clock.tick"}'
    assert send_lines(Settings(), [small]) == 1 and producer.sent == {0: [small], 1: [small]}
    tick = b'{"event_type": "clock.tick", "pad": "' + b"x" * 600 + b'"}'
    reports = []
    assert send_lines(Settings(), [tick, line(1)], on_skip=lambda n, m: reports.append(n)) == 1
    assert reports == [1]


def test_other_broker_errors_are_not_silently_lost(monkeypatch):
    fake = FakeProducer(KafkaTimeoutError("no answer"))
    monkeypatch.setattr(tools.bulk_send, "open_bulk_producer", lambda settings: fake)
    with pytest.raises(ProduceError, match=r"did not accept lines 1 to 3 \(one record batch of 2\): .*no answer"):
        send_lines(Settings(), [line(1), b"", line(3, 700)], on_skip=lambda n, m: None)


def test_an_error_of_the_input_reaches_the_caller(producer):
    def lines():
        yield line(1)
        raise OSError("the disk went away")
    with pytest.raises(OSError, match="the disk went away"):
        send_lines(Settings(), lines())


def test_an_unexpected_error_in_one_partitions_sender_fails_the_command_instead_of_hanging_it(monkeypatch):
    fake = FakeProducer()

    async def broken_send(batch, topic, partition):
        if partition == 1:
            raise RuntimeError("a bug in the sender")
        return await FakeProducer.send_batch(fake, batch, topic, partition)
    fake.send_batch = broken_send
    monkeypatch.setattr(tools.bulk_send, "open_bulk_producer", lambda settings: fake)
    monkeypatch.setattr(tools.bulk_send, "_QUEUED_BATCHES", 1)  # the filler meets a full outbox at once
    errors = []
    lines = [line(n) for n in range(200)]
    sending = threading.Thread(target=lambda: errors.append(catch(lambda: send_lines(Settings(), lines))), daemon=True)
    sending.start()
    sending.join(30)  # the bug hung the command: fail rather than hang the suite
    assert not sending.is_alive(), "loyalty produce hung after a sender failed"
    assert isinstance(errors[0], RuntimeError) and "a bug in the sender" in str(errors[0])


def catch(call) -> BaseException | None:
    """Return what `call` raised, or None."""
    try:
        call()
    except BaseException as exc:
        return exc
    return None
