"""Workarounds for the embedded tansu broker; inert unless enable_embedded_broker_workarounds() is called."""

from __future__ import annotations

import functools
import logging
import os
import time
from typing import Any, Dict, Iterable, Mapping, Optional

from streams.kafka_auth import aiokafka_options, kafka_python_options

log = logging.getLogger(__name__)

#: Faust settings for the embedded broker (see docs/faust-recipe.md and docs/embedded-broker.md).
#: tansu's group generations start at 0 and aiokafka sends no LeaveGroup then, so a
#: restarted worker waits out the old member's session: keep the session short.
EMBEDDED_FAUST_SETTINGS: Dict[str, Any] = {
    "broker_session_timeout": 10.0,
    "broker_heartbeat_interval": 1.0,
    "broker_rebalance_timeout": 20.0,
    # Belt and braces: with the end_offsets patch the check never fires, but a
    # ConsistencyError would stop a worker for a broker bug, not a real loss.
    "recovery_consistency_check": False,
    # tansu ignores `latest` correctly only between batches; never rely on it.
    "consumer_auto_offset_reset": "earliest",
}

_ORIGINAL_END_OFFSETS: Optional[Any] = None


#: Overrides the session timeout (seconds) for tests that restart workers often: a restarted worker
#: waits out its dead predecessor's session, so a shorter one makes each restart that much faster.
SESSION_TIMEOUT_ENV = "LOYALTY_SESSION_TIMEOUT_S"


def embedded_faust_settings() -> Dict[str, Any]:
    """Return the Faust settings to apply when broker_kind == 'embedded'."""
    conf = dict(EMBEDDED_FAUST_SETTINGS)
    override = os.environ.get(SESSION_TIMEOUT_ENV)
    if override:
        session_s = float(override)
        if session_s <= 0:
            raise ValueError(f"{SESSION_TIMEOUT_ENV} must be a positive number of seconds, not {override!r}")
        conf["broker_session_timeout"] = session_s
        # The heartbeat must fit several times in a session (Kafka's rule of thumb: at most a third).
        conf["broker_heartbeat_interval"] = min(conf["broker_heartbeat_interval"], session_s / 4)
    return conf


def enable_embedded_broker_workarounds() -> Dict[str, Any]:
    """Patch aiokafka's end_offsets to return the true log end; return the Faust settings to apply."""
    global _ORIGINAL_END_OFFSETS
    from aiokafka import AIOKafkaConsumer

    if _ORIGINAL_END_OFFSETS is None:
        _ORIGINAL_END_OFFSETS = AIOKafkaConsumer.end_offsets
        AIOKafkaConsumer.end_offsets = _true_end_offsets_factory(_ORIGINAL_END_OFFSETS)
        log.info("embedded broker: AIOKafkaConsumer.end_offsets patched to use the Fetch high watermark")
    return embedded_faust_settings()


def _true_end_offsets_factory(original: Any) -> Any:
    """Build the replacement for AIOKafkaConsumer.end_offsets."""

    @functools.wraps(original)
    async def end_offsets(self: Any, partitions: Iterable[Any]) -> Dict[Any, int]:
        """ListOffsets(LATEST), corrected with the Fetch high watermark of the last batch."""
        partitions = list(partitions)
        reported = await original(self, partitions)
        need = {tp: off for tp, off in reported.items() if off > 0}
        if not need:
            return dict(reported)
        true_ends = await _fetch_highwaters(self._client._bootstrap_servers, need)
        out = dict(reported)
        for tp, hw in true_ends.items():
            if hw is not None and hw > out[tp]:
                out[tp] = hw
        return out

    return end_offsets


async def _fetch_highwaters(bootstrap: Any, reported: Mapping[Any, int], timeout_s: float = 10.0) -> Dict[Any, Optional[int]]:
    """Fetch from reported_end-1 with a short-lived consumer and read each partition's high watermark."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=64 * 1024,
        **aiokafka_options(),
    )
    await consumer.start()
    try:
        tps = list(reported)
        consumer.assign(tps)
        for tp, off in reported.items():
            consumer.seek(tp, off - 1)
        deadline = time.monotonic() + timeout_s
        while True:
            hws = {tp: consumer.highwater(tp) for tp in tps}
            if all(hw is not None for hw in hws.values()) or time.monotonic() > deadline:
                break
            await consumer.getmany(*tps, timeout_ms=100, max_records=1)
        missing = [tp for tp, hw in hws.items() if hw is None]
        if missing:
            log.warning("embedded broker: no high watermark for %s; using ListOffsets", missing)
        return hws
    finally:
        await consumer.stop()


def high_watermarks(bootstrap: str, topic: str, timeout_s: float = 10.0) -> Dict[int, int]:
    """Return {partition: log end offset} of topic, correct on tansu and on Apache Kafka."""
    from kafka import KafkaConsumer, TopicPartition

    from tools.broker import bootstrap_servers

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers(bootstrap),
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=64 * 1024,
        **kafka_python_options(),
    )
    try:
        if topic not in consumer.topics():  # asking for an unknown topic would auto-create it on tansu
            raise KeyError(f"topic {topic!r} does not exist")
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        reported = consumer.end_offsets(tps)
        ends = {tp.partition: off for tp, off in reported.items()}
        need = [tp for tp in tps if reported[tp] > 0]
        if not need:
            return ends
        consumer.assign(need)
        for tp in need:
            consumer.seek(tp, reported[tp] - 1)
        deadline = time.monotonic() + timeout_s
        while any(consumer.highwater(tp) is None for tp in need):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no high watermark for {topic} within {timeout_s}s")
            consumer.poll(timeout_ms=100, max_records=1)
        for tp in need:
            ends[tp.partition] = max(reported[tp], consumer.highwater(tp))
        return ends
    finally:
        consumer.close()
