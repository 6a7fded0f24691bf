"""Workarounds for the embedded tansu broker: the Faust settings it needs, and its true end offsets."""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, Mapping

from streams.kafka_log import fetch_high_watermarks

log = logging.getLogger(__name__)

#: Faust settings for the embedded broker (see docs/faust.md and docs/embedded-broker.md).
#: tansu's group generations start at 0 and aiokafka sends no LeaveGroup then, so a
#: restarted worker waits out the old member's session: keep the session short.
EMBEDDED_FAUST_SETTINGS: Dict[str, Any] = {
    "broker_session_timeout": 10.0,
    "broker_heartbeat_interval": 1.0,
    "broker_rebalance_timeout": 20.0,
    # Belt and braces: with the corrected end offsets the check never fires, but a
    # ConsistencyError would stop a worker for a broker bug, not a real loss.
    "recovery_consistency_check": False,
    # tansu ignores `latest` correctly only between batches; never rely on it.
    "consumer_auto_offset_reset": "earliest",
}

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


async def true_end_offsets(bootstrap: list[str], reported: Mapping[Any, int]) -> Dict[Any, int]:
    """Correct ListOffsets(LATEST) ends, {TP: offset}, with the Fetch high watermark of each partition's last batch.

    The embedded broker answers ListOffsets with the base offset of its newest batch + 1, short of the log
    end when that batch holds several records. The worker's consumer calls this on that broker only (about
    0.1 s a call, made only on rebalance); on Apache Kafka both ends agree.
    """
    need = {tp: offset for tp, offset in reported.items() if offset > 0}
    if not need:
        return dict(reported)
    true_ends = await fetch_high_watermarks(bootstrap, need)
    missing = [tp for tp, highwater in true_ends.items() if highwater is None]
    if missing:
        log.warning("embedded broker: no high watermark for %s; using ListOffsets", missing)
    ends = dict(reported)
    for tp, highwater in true_ends.items():
        if highwater is not None and highwater > ends[tp]:
            ends[tp] = highwater
    return ends

