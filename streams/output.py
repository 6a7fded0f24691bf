"""Send a batch's output and changelog records as one Kafka record batch per topic partition."""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Optional

from faust.types import TP

from streams.pipeline import Outgoing


class BatchSender:
    """Writes through the Faust app's own aiokafka producer, so Faust's commit flush covers it.

    Faust's `send_soon` buffer publishes one message at a time (about 50 µs each); appending to a
    record batch per topic partition costs a few µs and one await per partition per batch.
    """

    def __init__(self, app: Any, table: Any) -> None:
        self.app = app
        self.table = table
        self._pending: list[tuple[str, int, list]] = []

    def send(self, messages: Iterable[Outgoing]) -> None:
        """Queue messages, grouped by topic partition, keeping their order within each."""
        groups: dict[tuple[str, int], list[tuple[Optional[bytes], bytes]]] = defaultdict(list)
        for message in messages:
            groups[(message.topic, message.partition)].append((message.key, message.value))
        self._pending.extend((topic, partition, records) for (topic, partition), records in groups.items())

    def send_changelog(self, partition: int, records: list[tuple[bytes, bytes]]) -> None:
        """Queue a partition's changelog records (before the outputs they explain)."""
        self._pending.append((self.table.changelog_topic.get_topic_name(), partition, records))

    async def written(self) -> None:
        """Send everything queued and wait until the broker has it (one wait per batch, not per record)."""
        pending, self._pending = self._pending, []
        changelog = self.table.changelog_topic.get_topic_name()
        futures = []
        for topic, partition, records in pending:
            for future in await self._send_records(topic, partition, records):
                futures.append((topic, partition, future))
        for topic, partition, future in futures:
            metadata = await future
            if topic == changelog:
                # A batch's base offset: a restart re-reads the rest of the batch, which is harmless.
                self.table.data.set_persisted_offset(TP(topic, partition), metadata.offset)

    async def _send_records(self, topic: str, partition: int, records: list[tuple[Optional[bytes], bytes]]) -> list:
        """Append records to as few record batches as their size allows; return the sends' futures."""
        producer = self.app.producer._ensure_producer()
        batch = producer.create_batch()
        futures = []
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        if batch.record_count():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures
