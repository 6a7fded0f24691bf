"""`loyalty deliver`: POST each record of an output topic to a webhook, at least once and in order per customer.

One thread owns the group consumer: it reads, queues each record on its customer's lane, and commits a
partition's offset only past records that are done (answered 2xx, parked, or left out by --only). Worker
threads, as many as the concurrency limit, make the requests.
"""
from __future__ import annotations

import queue
import signal
import threading
import time
from collections import Counter
from typing import Any, Optional

import click
import orjson
from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from streams.kafka_log import group_consumer, group_lag
from streams.settings import Settings
from tools.broker import create_topics, wait_for_broker
from tools.delivery_attempts import ABANDONED, Attempts, DeliveryConfig, Job, Outcome, record_id
from tools.delivery_metrics import DeliveryMetrics
from tools.delivery_order import Lanes, Offsets
from tools.produce import ProduceError, open_producer

_COMMIT_EVERY_S = 0.2
_LAG_EVERY_S = 1.0
_MAX_OUTSTANDING = 5000  # records read and not yet done: past it, fetching pauses (bounds memory)


def selected(doc: Any, only: frozenset[str]) -> bool:
    """True if the record is to be delivered: no --only, or its campaign (triggers) or kind (others) is listed."""
    if not only:
        return True
    return isinstance(doc, dict) and (doc.get("campaign") or doc.get("kind")) in only


class _Rebalance(ConsumerRebalanceListener):
    """Commit what is done before partitions go to another member, and forget them."""

    def __init__(self, deliverer: "Deliverer") -> None:
        self.deliverer = deliverer

    def on_partitions_revoked(self, revoked) -> None:
        self.deliverer.revoke({tp.partition for tp in revoked})

    def on_partitions_assigned(self, assigned) -> None:
        pass


class Deliverer:
    """Read a topic in a consumer group and deliver its records to one receiver."""

    def __init__(self, settings: Settings, config: DeliveryConfig, metrics: DeliveryMetrics) -> None:
        self.settings, self.config, self.metrics = settings, config, metrics
        self.stop = threading.Event()
        self.jobs: queue.Queue = queue.Queue()
        self.done: queue.Queue = queue.Queue()
        self.offsets, self.lanes = Offsets(), Lanes()
        self.committed: dict[int, int] = {}
        self.totals: Counter = Counter()
        self.lock = threading.RLock()  # the rebalance callback may come from the client's own thread
        self.consumer: Any = None

    def run(self) -> Counter:
        """Deliver until stop is set; return the totals (delivered, parked, skipped)."""
        self.consumer = group_consumer(self.settings.broker, self.config.topic, self.config.group_id,
                                       _Rebalance(self))
        try:
            self._check_topics()
            attempts = Attempts(self.config, open_producer(self.settings), self.metrics, self.stop)
            workers = [threading.Thread(target=self._work, args=(attempts,), daemon=True, name=f"deliver-{n}")
                       for n in range(self.config.concurrency)]
            for worker in workers:
                worker.start()
            self._loop()
            for worker in workers:  # an answer being awaited is waited for (at most --timeout)
                worker.join(self.config.timeout_s + 5)
            self._finish_done()
            self._commit()
            attempts.producer.close(timeout=5)
        finally:
            self.consumer.close(autocommit=False)
        return self.totals

    def _check_topics(self) -> None:
        """Refuse a topic that does not exist; create the park topic with as many partitions if it is missing."""
        topics = self.consumer.topics()  # every topic's metadata: names none, so the broker creates none
        if self.config.topic not in topics:
            raise ProduceError(f"topic {self.config.topic} does not exist")
        if self.config.park_topic not in topics:
            partitions = len(self.consumer.partitions_for_topic(self.config.topic))
            create_topics(self.settings.broker, {self.config.park_topic: partitions})

    def _loop(self) -> None:
        """Read, hand out, collect and commit until stop is set."""
        next_commit = next_lag = 0.0
        while not self.stop.is_set():
            self._finish_done()
            now = time.monotonic()
            if now >= next_commit:
                self._commit()
                next_commit = now + _COMMIT_EVERY_S
            if now >= next_lag:
                with self.lock:
                    self.metrics.set_lag(group_lag(self.consumer, self.offsets.committable()))
                next_lag = now + _LAG_EVERY_S
            assigned = self.consumer.assignment()
            if self.offsets.outstanding() >= _MAX_OUTSTANDING:
                self.consumer.pause(*assigned)
            else:
                self.consumer.resume(*assigned)
            for records in self.consumer.poll(timeout_ms=100).values():
                for record in records:
                    self._admit(record)

    def _admit(self, record: Any) -> None:
        """Track a record just read and queue it on its customer's lane (or count it skipped)."""
        with self.lock:
            entry = self.offsets.add(record.partition, record.offset)
            doc = _json(record.value)
            if record.value is None or not selected(doc, self.config.only):
                entry.done = True
                self.totals["skipped"] += 1
                self.metrics.skipped.inc()
                return
            job = Job(record.partition, record.offset, record.key, record.value, doc,
                      record_id(self.config.topic, record.value, doc), entry)
            # A record without a key has no customer to keep in order with: a lane of its own.
            job.lane, ready = self.lanes.push((record.partition, record.key or f"#{record.offset}"), job)
            if ready:
                self.jobs.put(job)

    def _work(self, attempts: Attempts) -> None:
        """Deliver jobs until stopped; a job not started when stop comes is abandoned (delivered next run)."""
        while True:
            try:
                job = self.jobs.get(timeout=0.2)
            except queue.Empty:
                if self.stop.is_set():
                    return
                continue
            self.done.put((job, ABANDONED if self.stop.is_set() else attempts.deliver(job)))

    def _finish_done(self) -> None:
        """Mark finished jobs done and start each customer's next record."""
        while True:
            try:
                job, outcome = self.done.get_nowait()
            except queue.Empty:
                return
            self._finish(job, outcome)

    def _finish(self, job: Job, outcome: Outcome) -> None:
        if outcome.kind == "abandoned":  # not done: its offset is not committed past
            return
        with self.lock:
            job.entry.done = True
            self.totals[outcome.kind] += 1
            following = self.lanes.finish(job.lane)
        if following is not None and not self.stop.is_set():
            self.jobs.put(following)

    def _commit(self, partitions: Optional[set[int]] = None) -> None:
        """Commit each partition's offset past its done records, where it moved."""
        with self.lock:
            moved = {p: offset for p, offset in self.offsets.committable().items()
                     if self.committed.get(p) != offset and (partitions is None or p in partitions)}
            if not moved:
                return
            try:
                self.consumer.commit({TopicPartition(self.config.topic, p): OffsetAndMetadata(offset, "", -1)
                                      for p, offset in moved.items()})
                self.committed.update(moved)
            except (CommitFailedError, KafkaError) as exc:  # the group moved on: those records come again
                click.echo(f"deliver: commit failed ({exc}); the records after it will be delivered again",
                           err=True)

    def revoke(self, partitions: set[int]) -> None:
        """Commit and forget partitions given to another member (their jobs in flight end harmlessly)."""
        with self.lock:
            self._finish_done()
            self._commit(partitions)
            self.offsets.forget(partitions)
            self.lanes.forget(partitions)
            self.metrics.forget(partitions)
            for partition in partitions:
                self.committed.pop(partition, None)


def _json(value: Optional[bytes]) -> Any:
    """Decode a record's JSON value, or None."""
    try:
        return orjson.loads(value) if value else None
    except orjson.JSONDecodeError:
        return None


def run_deliverer(settings: Settings, config: DeliveryConfig, metrics_port: Optional[int], metrics_host: str) -> None:
    """Say what is delivered where, deliver until SIGINT or SIGTERM, then say what was done."""
    wait_for_broker(settings.broker, timeout_s=10, say=lambda line: click.echo(f"deliver: {line}", err=True))
    metrics = DeliveryMetrics(config.topic)
    metrics.serve(metrics_port, metrics_host)
    deliverer = Deliverer(settings, config, metrics)
    previous = {sig: signal.signal(sig, lambda *_: deliverer.stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    only = ",".join(sorted(config.only)) or "every record"
    click.echo(f"deliver: {config.topic} -> {config.host}, only {only} (group {config.group_id}, "
               f"{config.concurrency} at a time, undeliverable to {config.park_topic})", err=True)
    try:
        totals = deliverer.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo(f"deliver: stopped; delivered {totals['delivered']}, parked {totals['parked']}, "
               f"skipped {totals['skipped']}", err=True)
