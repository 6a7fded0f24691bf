"""Peer: a Quix Streams application running the same fold, each customer's state in Quix's RocksDB store.

Run by `loyalty bench` as `python -m bench.peer_quix ...` (needs the `bench` extra); prints one JSON line.
"""
from __future__ import annotations

import time
from typing import Any, Optional

import orjson
from quixstreams import Application, message_context

from bench.peer_common import QUIX_TOPIC, PeerClock, peer_arguments, print_result
from projections.customer import DEFAULT_POLICY
from projections.effects import Outcome, Output
from projections.partition import PartitionFold
from projections.state import CustomerState
from schemas.validate import Rejection, validate_record
from streams.gc_tuning import tune_gc
from streams.settings import INPUT_TOPIC

_STATE_KEY = "state"


class QuixStore:
    """A partition's customer states in Quix's state store, each under its customer's key.

    A tick fires rules for customers other than the message's key, so the store reads and writes
    through the partition's transaction with each customer's own key prefix (Quix's per-key State
    is that transaction with the message key as prefix). States put are kept until save() writes them
    into the transaction (once a message), so that discard can return to what the transaction holds.
    """

    def __init__(self) -> None:
        self.transaction: Any = None
        self._unsaved: dict[str, CustomerState] = {}

    def get(self, customer_id: str) -> Optional[CustomerState]:
        state = self._unsaved.get(customer_id)
        if state is None:
            raw = self.transaction.get_bytes(_STATE_KEY, prefix=customer_id.encode())
            state = None if raw is None else CustomerState.from_bytes(raw)
        return state

    def put(self, customer_id: str, state: CustomerState) -> None:
        self._unsaved[customer_id] = state

    def discard(self, customer_id: str) -> None:
        self._unsaved.pop(customer_id, None)

    def save(self) -> None:
        """Write the states put since the last save into the transaction."""
        for customer_id, state in self._unsaved.items():
            self.transaction.set_bytes(_STATE_KEY, state.to_bytes(), prefix=customer_id.encode())
        self._unsaved.clear()


class QuixPeer:
    """The application: validate, fold with the partition's PartitionFold, emit the effects."""

    def __init__(self, app: Application, records: int) -> None:
        self.app = app
        self.records = records
        self.seen = 0
        self.folds: dict[int, PartitionFold] = {}
        self.clock = PeerClock()

    def step(self, value: bytes, key: Optional[bytes], timestamp_ms: int, headers: Any, state: Any) -> list[bytes]:
        """Fold one record; return its effects as JSON documents."""
        partition = message_context().partition
        fold = self.folds.get(partition)
        if fold is None:
            fold = self.folds[partition] = PartitionFold(QuixStore(), DEFAULT_POLICY)
        fold.store.transaction = state._transaction  # noqa: SLF001 (see QuixStore)
        self.seen += 1
        if self.seen >= self.records:
            self.app.stop()  # Quix finishes this record, checkpoints and returns from run()
        event = validate_record(value, key, DEFAULT_POLICY, timestamp_ms)
        if isinstance(event, Rejection):
            return []
        outcome, effects = fold.apply(event, message_context().offset)
        fold.store.save()
        if outcome is Outcome.APPLIED:
            self.clock.applied(1)
        return [orjson.dumps(effect.record) for effect in effects if isinstance(effect, Output)]


def build(broker: str, group: str, records: int, state_dir: str) -> QuixPeer:
    """Build the Quix application on the input topic."""
    # Quix's defaults, except: the session is short because the embedded broker makes a new group wait
    # out a session before it assigns partitions (45 s by default).
    app = Application(broker_address=broker, consumer_group=group, auto_offset_reset="earliest",
                      state_dir=state_dir, loglevel="WARNING",
                      consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000})
    source = app.topic(INPUT_TOPIC, key_deserializer="bytes", value_deserializer="bytes")
    # Quix sizes its changelog topics from the input topic's retention.ms, which the embedded broker's
    # DescribeConfigs leaves out (KeyError 'retention.ms'); give it Kafka's "keep forever" here only.
    source.broker_config.extra_config.setdefault("retention.ms", "-1")
    effects = app.topic(QUIX_TOPIC, key_serializer="bytes", value_serializer="bytes")
    peer = QuixPeer(app, records)
    frame = app.dataframe(source)
    frame = frame.apply(peer.step, stateful=True, metadata=True, expand=True)
    frame.to_topic(effects)
    return peer


def main() -> None:
    """Run the application on the benchmark's backlog and print its result."""
    args = peer_arguments(__doc__)
    tune_gc()  # the worker's collector settings: the comparison is of the code, not of the runtime
    started = time.monotonic()
    peer = build(args.broker, args.group, args.records, args.state_dir)
    peer.app.run()
    print_result(peer.clock, started)


if __name__ == "__main__":
    main()
