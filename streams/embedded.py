"""Workarounds for the embedded tansu broker; inert unless enable_embedded_broker_workarounds() is called."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any, Dict, Iterable, Optional

from aiokafka import AIOKafkaConsumer

from streams.kafka_log import fetch_high_watermarks

log = logging.getLogger(__name__)

#: Faust settings for the embedded broker (see docs/faust.md and docs/embedded-broker.md).
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
        true_ends = await fetch_high_watermarks(self._client._bootstrap_servers, need)
        missing = [tp for tp, hw in true_ends.items() if hw is None]
        if missing:
            log.warning("embedded broker: no high watermark for %s; using ListOffsets", missing)
        out = dict(reported)
        for tp, hw in true_ends.items():
            if hw is not None and hw > out[tp]:
                out[tp] = hw
        return out

    return end_offsets
