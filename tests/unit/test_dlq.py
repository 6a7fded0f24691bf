"""The DLQ record: the reason and the original bytes, cut (with length and SHA-256) when too large."""
from __future__ import annotations

import base64
import hashlib

import orjson
import pytest

from streams.dlq import KEY_CHARS, dlq_value

LIMIT = 100_000
SLACK = 8 * 1024  # "a few KB" beyond max_raw_bytes for the rest of the record


def record(value, key=b"c1", reason="invalid_json", limit=LIMIT, **kwargs) -> dict:
    out = dlq_value(3, 42, key, value, reason, f"{reason}: detail", limit, **kwargs)
    assert len(out) < limit + SLACK
    return orjson.loads(out)


def original(rec: dict) -> bytes:
    return base64.b64decode(rec["raw"]) if rec["raw_encoding"] == "base64" else rec["raw"].encode()


def test_a_small_utf8_record_keeps_its_text_as_the_pipeline_always_did():
    rec = record(b'{"event_id": "\xc3\xa9"}', key=b"c1")
    assert rec == {"error": "invalid_json: detail", "reason": "invalid_json", "raw": '{"event_id": "é"}',
                   "raw_encoding": "utf-8", "key": "c1",
                   "source": {"topic": "customer-events", "partition": 3, "offset": 42}}


def test_a_small_non_utf8_record_is_base64():
    rec = record(b"\xff\xfe\x00 not utf-8", key=None)
    assert (rec["raw_encoding"], original(rec), rec["key"]) == ("base64", b"\xff\xfe\x00 not utf-8", None)
    assert "raw_truncated" not in rec


@pytest.mark.parametrize("value", [None, b""])
def test_no_value_is_an_empty_raw(value):
    assert (record(value)["raw"], record(value)["raw_encoding"]) == ("", "utf-8")


def test_a_2mb_text_keeps_its_first_bytes_its_length_and_its_digest():
    value = b'{"event_id": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    rec = record(value)
    assert rec["raw_truncated"] is True and rec["raw_bytes"] == len(value)
    assert rec["raw_sha256"] == hashlib.sha256(value).hexdigest()
    # The raw field as written fits max_raw_bytes: the three escaped quotes cost three bytes of text.
    assert rec["raw_encoding"] == "utf-8" and original(rec) == value[:LIMIT - 3]


def test_text_is_cut_on_a_character_boundary():
    value = "é".encode() * LIMIT  # 2 bytes each: the limit falls on a boundary, and one byte after it
    for limit in (LIMIT, LIMIT + 1):
        rec = record(value, limit=limit)
        assert rec["raw_encoding"] == "utf-8" and value.startswith(original(rec))
        assert len(original(rec)) == LIMIT
    emoji = "😀".encode() * LIMIT  # 4 bytes each
    rec = record(emoji, limit=LIMIT + 3)
    assert rec["raw_encoding"] == "utf-8" and original(rec) == emoji[:LIMIT]


def test_a_large_non_utf8_value_is_cut_and_base64_stays_within_the_limit():
    value = b"\xff" * 3_000_000
    rec = record(value)
    assert rec["raw_encoding"] == "base64" and rec["raw_truncated"] and rec["raw_bytes"] == len(value)
    assert len(rec["raw"]) <= LIMIT and value.startswith(original(rec))


def test_text_full_of_escapes_stays_within_the_limit():
    # Each control character is written as \u0001 (6 bytes): the record must not grow six times.
    value = b"\x01" * (LIMIT - 10)
    rec = record(value)
    assert rec["raw_encoding"] == "utf-8" and rec["raw_truncated"] and rec["raw_bytes"] == len(value)
    assert value.startswith(original(rec)) and len(orjson.dumps(rec["raw"])) <= LIMIT + 2
    quotes = b'"\\' * LIMIT
    rec = record(quotes)
    assert quotes.startswith(original(rec)) and len(orjson.dumps(rec["raw"])) <= LIMIT + 2


def test_a_value_just_at_the_limit_is_kept_whole():
    value = b"y" * LIMIT
    rec = record(value)
    assert original(rec) == value and "raw_truncated" not in rec


def test_a_huge_key_is_cut_and_a_bad_one_decoded_with_replacement():
    assert record(b"x", key=b"k" * 2_000_000)["key"] == "k" * KEY_CHARS
    assert record(b"x", key=b"\xffc1")["key"] == "\ufffdc1"


def test_a_processing_error_can_carry_the_exception():
    rec = record(b"{}", reason="processing_error", exception="Traceback ...\nOverflowError: too big")
    assert rec["exception"].endswith("OverflowError: too big")
    assert "exception" not in record(b"{}")
    assert len(record(b"{}", exception="x" * 2_000_000)["exception"]) < SLACK
