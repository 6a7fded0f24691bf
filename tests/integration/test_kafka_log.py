"""streams/kafka_log.py finds a topic's true end on the embedded broker, whose ListOffsets falls short, and reads
every record up to it; the worker's consumer corrects its end offsets with the same high-watermark read."""
from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaAdminClient, KafkaProducer

from streams.embedded import true_end_offsets
from streams.kafka_log import high_watermarks, read_log, read_topic
from tools.broker import EmbeddedBroker, create_topics

pytestmark = pytest.mark.broker

SENT = {0: 150, 1: 1, 2: 0}  # records per partition of "many"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A broker with a topic whose partitions end in a batch of many records, one record, and none."""
    with EmbeddedBroker(log=tmp_path_factory.mktemp("kafka-log") / "broker.log") as running:
        create_topics(running.url, {"many": 3, "empty": 2})
        producer = KafkaProducer(bootstrap_servers=running.bootstrap, linger_ms=50)  # batches of many records
        for partition, count in SENT.items():
            for n in range(count):
                producer.send("many", key=b"k", value=f"{partition}-{n}".encode(), partition=partition)
        producer.flush()
        producer.close()
        yield running


def list_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """What ListOffsets(LATEST) alone says: aiokafka's end_offsets."""
    async def ask():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
            return {tp.partition: end for tp, end in ends.items()}
        finally:
            await consumer.stop()
    return asyncio.run(ask())


def test_the_broker_under_reports_so_the_high_watermark_matters(broker):
    assert list_offsets(broker.bootstrap, "many", 3)[0] < SENT[0]


def test_high_watermarks_are_the_log_ends(broker):
    assert high_watermarks(broker.url, "many") == SENT
    assert high_watermarks(broker.bootstrap, "empty") == {0: 0, 1: 0}


def test_high_watermarks_work_inside_a_running_event_loop(broker):
    async def inside():
        return high_watermarks(broker.url, "many")
    assert asyncio.run(inside()) == SENT


def test_an_unknown_topic_is_refused_and_not_created(broker):
    with pytest.raises(KeyError, match="no-such-topic"):
        high_watermarks(broker.url, "no-such-topic")
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        assert "no-such-topic" not in admin.list_topics()
    finally:
        admin.close()


def test_read_topic_yields_every_record_in_log_order(broker):
    records = list(read_topic(broker.url, "many"))
    for partition, count in SENT.items():
        mine = [r for r in records if r.partition == partition]
        assert [r.offset for r in mine] == list(range(count))
        assert [r.value for r in mine] == [f"{partition}-{n}".encode() for n in range(count)]
        assert all(r.key == b"k" and r.timestamp_ms is not None for r in mine)
    assert list(read_topic(broker.url, "empty")) == []


def test_read_log_stops_at_the_ends_given(broker):
    assert [(r.partition, r.offset) for r in read_log(broker.url, "many", {0: 10, 1: 0})] == [
        (0, n) for n in range(10)]


def test_a_read_that_cannot_reach_its_end_times_out(broker):
    with pytest.raises(TimeoutError, match="partitions \\[1\\]"):
        list(read_log(broker.url, "many", {1: SENT[1] + 5}, timeout_s=1.0))


def test_the_corrected_end_offsets_are_the_log_ends(broker):
    reported = {TopicPartition("many", p): end for p, end in list_offsets(broker.bootstrap, "many", 3).items()}
    ends = asyncio.run(true_end_offsets([broker.bootstrap], reported))
    assert {tp.partition: end for tp, end in ends.items()} == SENT
