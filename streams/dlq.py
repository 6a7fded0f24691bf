"""The customer-events-dlq record: why an input was refused, and its original bytes (cut if too large)."""
from __future__ import annotations

import base64
import hashlib
from typing import Optional

import orjson

from streams.settings import INPUT_TOPIC

KEY_CHARS = 256       # a key is shown decoded and cut to this many characters
_ERROR_CHARS = 1024   # error and exception texts are cut too, so the record's size stays bounded
_EXCEPTION_CHARS = 4096


def _utf8_prefix(raw: bytes, limit: int) -> Optional[str]:
    """Return the text of raw's first `limit` bytes (a character cut in two dropped), or None if not UTF-8."""
    head = raw[:limit]
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Only the last character may be incomplete (at most 3 bytes), and only where raw was cut.
        if len(head) == len(raw) or exc.start < len(head) - 3 or exc.reason != "unexpected end of data":
            return None
        return head[:exc.start].decode("utf-8")


def _json_prefix(encoded: bytes, limit: int) -> str:
    """Return the longest start of an orjson-encoded string whose escaped form fits in `limit` bytes."""
    cut = limit + 1  # the opening quote
    while True:
        try:
            # A cut inside an escape (\u0001, \") or a character fails to parse: back off byte by byte.
            return orjson.loads(encoded[:cut] + b'"')
        except orjson.JSONDecodeError:
            cut -= 1


def _raw_fields(raw: bytes, max_raw_bytes: int) -> dict:
    """Return raw, raw_encoding and, when cut, raw_truncated, raw_bytes and raw_sha256.

    The raw field as written (escaped text or base64) is at most max_raw_bytes, so the record stays
    under max_raw_bytes plus a few KB: a text full of escapes or a base64 one keeps fewer original bytes.
    """
    text = _utf8_prefix(raw, max_raw_bytes)
    if text is not None:
        encoded = orjson.dumps(text)
        if len(encoded) - 2 > max_raw_bytes:
            text = _json_prefix(encoded, max_raw_bytes)
        kept = len(text.encode("utf-8"))
        fields = {"raw": text, "raw_encoding": "utf-8"}
    else:
        kept = min(len(raw), max_raw_bytes // 4 * 3)  # base64 writes 4 characters for 3 bytes
        fields = {"raw": base64.b64encode(raw[:kept]).decode("ascii"), "raw_encoding": "base64"}
    if kept < len(raw):
        fields.update(raw_truncated=True, raw_bytes=len(raw), raw_sha256=hashlib.sha256(raw).hexdigest())
    return fields


def dlq_value(partition: int, offset: int, key: Optional[bytes], value: Optional[bytes], reason: str, error: str,
              max_raw_bytes: int, exception: Optional[str] = None) -> bytes:
    """Build the DLQ record's JSON value (a refused record larger than max_raw_bytes keeps only its start)."""
    record = {"error": error[:_ERROR_CHARS], "reason": reason, **_raw_fields(bytes(value or b""), max_raw_bytes),
              "key": key.decode("utf-8", "replace")[:KEY_CHARS] if key is not None else None,
              "source": {"topic": INPUT_TOPIC, "partition": partition, "offset": offset}}
    if exception is not None:
        record["exception"] = exception[:_EXCEPTION_CHARS]
    return orjson.dumps(record)
