"""streams/http_guard.py: bearer tokens compared in constant time, bounded quotes, failures logged once a minute."""
from __future__ import annotations

import asyncio

import orjson
import pytest

from streams import http_guard
from streams.http_guard import ErrorLog, bearer_ok, guarded, quote_input


class FakeView:
    """What a Faust view gives a handler: a way to build a response."""

    def bytes(self, value, content_type=None, status=200, headers=None):
        return {"status": status, "body": orjson.loads(value), "headers": headers or {}}


class FakeRequest:
    def __init__(self, authorization=None):
        self.headers = {"Authorization": authorization} if authorization else {}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_quote_input_keeps_at_most_64_characters():
    assert quote_input("c1") == "'c1'"
    assert quote_input("x" * 64) == repr("x" * 64)
    quoted = quote_input("y" * 8192)
    assert "y" * 64 in quoted and "y" * 65 not in quoted and quoted.endswith("…")


@pytest.mark.parametrize("header, ok", [
    ("Bearer s3cret-token", True), ("bearer s3cret-token", True), ("Bearer  s3cret-token ", True),
    (None, False), ("", False), ("Bearer", False), ("Bearer s3cret-toke", False), ("Bearer s3cret-token2", False),
    ("Basic s3cret-token", False), ("s3cret-token", False), ("Bearer S3CRET-TOKEN", False), ("Bearer ü", False),
])
def test_bearer_ok_accepts_exactly_the_token(header, ok):
    assert bearer_ok(header, "s3cret-token") is ok


def test_no_token_means_no_check():
    assert bearer_ok(None, None) and bearer_ok("Bearer anything", None)


def test_the_token_is_compared_in_constant_time(monkeypatch):
    calls = []

    def compare(a, b):
        calls.append((a, b))
        return a == b
    monkeypatch.setattr(http_guard.hmac, "compare_digest", compare)
    assert bearer_ok("Bearer abc", "abc") and not bearer_ok("Bearer abd", "abc")
    assert calls == [(b"abc", b"abc"), (b"abd", b"abc")]


def test_error_log_writes_one_line_per_kind_per_interval():
    lines, clock = [], Clock()
    errors = ErrorLog(60.0, clock, lambda event, **fields: lines.append((event, fields)))
    for _ in range(500):
        errors.report("failed", "A")
        errors.report("failed", "B")
    assert [fields["kind"] for _, fields in lines] == ["A", "B"]
    clock.now += 59.9
    errors.report("failed", "A")
    assert len(lines) == 2
    clock.now += 0.1
    errors.report("failed", "A")
    assert lines[-1][1] == {"kind": "A", "not_logged_since": 500}


def run(handler, token=None, authorization=None, errors=None):
    page = guarded("/x", token, errors or ErrorLog(log=lambda *a, **k: None))(handler)
    return asyncio.run(page(FakeView(), FakeRequest(authorization)))


async def ok_handler(view, request):
    return view.bytes(b'{"ok": true}')


def test_guarded_asks_for_the_token_before_the_handler_runs():
    ran = []

    async def handler(view, request):
        ran.append(1)
        return view.bytes(b"{}")
    answer = run(handler, token="t0k3n")
    assert answer["status"] == 401 and answer["headers"]["WWW-Authenticate"].startswith("Bearer") and not ran
    assert run(handler, token="t0k3n", authorization="Bearer t0k3n")["status"] == 200 and ran
    assert run(ok_handler)["status"] == 200  # no token configured: open


def test_a_handler_that_raises_answers_500_and_a_flood_logs_one_line():
    lines = []
    errors = ErrorLog(60.0, Clock(), lambda event, **fields: lines.append((event, fields)))

    async def broken(view, request):
        raise KeyError("customer_id")
    answers = [run(broken, errors=errors) for _ in range(300)]
    assert {a["status"] for a in answers} == {500}
    assert answers[0]["body"] == {"error": "internal error"}
    assert len(lines) == 1
    event, fields = lines[0]
    assert fields["kind"] == "/x KeyError" and fields["at"].startswith("test_http_guard.py:")
    assert "customer_id" not in str(fields)  # the message may quote input: only the type and place are logged
