"""Worker logs: one line per lifecycle event (never per event processed), as text or JSON lines.

Log records carry ids, partitions, counts and times only: never a birthday, a time zone or any
other personal field of a customer.
"""
from __future__ import annotations

import logging
import os
import sys
import time

import orjson

LOGGER_NAME = "loyalty"


class JsonLinesFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, event and its fields."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                "level": record.levelname.lower(), "logger": record.name, "event": record.getMessage(),
                **getattr(record, "fields", {})}
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def _text(value: object) -> str:
    """Render a field without spaces: a list as `a,b`, a mapping as `k:v,k2:v2`, nothing as `-`."""
    if isinstance(value, dict):
        value = [f"{k}:{v}" for k, v in value.items()]
    if isinstance(value, (list, tuple, set)):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


class TextFormatter(logging.Formatter):
    """Format a record as `time level logger event key=value ...`."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={_text(v)}" for k, v in getattr(record, "fields", {}).items())
        text = f"{self.formatTime(record)} {record.levelname:<7} {record.name}: {record.getMessage()} {fields}"
        return text.rstrip() + (("\n" + self.formatException(record.exc_info)) if record.exc_info else "")


def configure_logging(fmt: str = "text", level: str = "INFO") -> None:
    """Send our lifecycle lines at `level` and the frameworks' warnings to stderr, in one format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLinesFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)  # Faust, aiokafka and mode: warnings and errors only
    logging.getLogger(LOGGER_NAME).setLevel(level)
    # The group's join and sync steps, a few lines per rebalance: a worker that never gets its partitions
    # shows how far it came.
    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
    coordinator.setLevel(logging.INFO)
    coordinator.filters[:] = [_without_partition_sets]


def _without_partition_sets(record: logging.LogRecord) -> bool:
    """Drop aiokafka's lines listing every partition assigned or revoked: ours say it in one short line."""
    return record.levelno > logging.INFO or not str(record.msg).startswith(("Setting newly", "Revoking previously"))


def lifecycle(event: str, **fields: object) -> None:
    """Log one lifecycle event with its fields."""
    logging.getLogger(LOGGER_NAME).info(event, extra={"fields": fields})


def warning(event: str, **fields: object) -> None:
    """Log one warning with its fields."""
    logging.getLogger(LOGGER_NAME).warning(event, extra={"fields": fields})


def crash_without_commit(exc: BaseException) -> None:
    """Log an unexpected failure and end the process at once, before Faust can commit anything."""
    logging.getLogger(LOGGER_NAME).critical("worker failed; exiting without commit", exc_info=exc)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(70)  # EX_SOFTWARE: a supervisor (compose restart policy) starts it again
