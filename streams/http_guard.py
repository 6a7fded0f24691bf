"""What every HTTP answer of a worker goes through: a bearer token, bounded error texts, failures logged sparingly."""
from __future__ import annotations

import asyncio
import hmac
import logging
import time
import traceback
from functools import wraps
from http import HTTPStatus
from typing import Any, Callable, Optional

import orjson
from aiohttp.web_protocol import RequestHandler

from streams.logs import warning

QUOTE_CHARS = 64       # an error answer quotes at most this many characters of the caller's input
LOG_EVERY_S = 60.0     # a failing route logs each kind of failure at most once per this many seconds
RETRY_AFTER_S = 5      # what a 503 asks the caller to wait


def quote_input(text: str, limit: int = QUOTE_CHARS) -> str:
    """Quote at most `limit` characters of a caller's input, marking a cut with '…'."""
    return repr(text[:limit]) + ("…" if len(text) > limit else "")


def bearer_ok(header: Optional[str], token: Optional[str] | tuple[str, ...]) -> bool:
    """True when no token is required, or when the Authorization header carries it (or one of them: scopes)."""
    if token is None or token == ():
        return True
    scheme, _, given = (header or "").partition(" ")
    given_bytes = given.strip().encode("utf-8", "replace")
    # compare_digest takes as long whatever prefix matches, so timing tells nothing about the token.
    return scheme.lower() == "bearer" and any(hmac.compare_digest(given_bytes, one.encode("utf-8"))
                                              for one in ((token,) if isinstance(token, str) else token))


def auth_header(token: Optional[str]) -> dict[str, str]:
    """The header that carries `token` (none without a token)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def json_answer(web: Any, data: Any, status: int = 200, headers: Optional[dict] = None) -> Any:
    """A JSON response."""
    return web.bytes(orjson.dumps(data), content_type="application/json", status=status, headers=headers)


def unavailable(web: Any, data: dict) -> Any:
    """A 503 that says when to retry."""
    return json_answer(web, {**data, "retry_after_s": RETRY_AFTER_S}, 503, {"Retry-After": str(RETRY_AFTER_S)})


class ErrorLog:
    """Logs each kind of failure at most once per interval, with how many more there were since the last line.

    A flood of failing requests then costs a line a minute, not a traceback each.
    """

    def __init__(self, interval_s: float = LOG_EVERY_S, clock: Callable[[], float] = time.monotonic,
                 log: Callable[..., None] = warning) -> None:
        self.interval_s, self.clock, self.log = interval_s, clock, log
        self._logged_at: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def report(self, event: str, kind: str, **fields: object) -> bool:
        """Log `event` of this kind unless one was logged within the interval; True if logged."""
        now = self.clock()
        last = self._logged_at.get(kind)
        if last is not None and now - last < self.interval_s:
            self._unlogged[kind] = self._unlogged.get(kind, 0) + 1
            return False
        self._logged_at[kind] = now
        self.log(event, kind=kind, **fields, not_logged_since=self._unlogged.pop(kind, 0))
        return True


def _where(exc: BaseException) -> str:
    """The file and line that raised (what a developer needs first), without the message, which may quote input."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "-"


def guarded(route: str, token: Optional[str], errors: ErrorLog, *context: Any) -> Callable:
    """Wrap a page handler: 401 without the bearer token (if one is set), 500 without a traceback if it raises.

    The handler is called with `context` first, then the view, the request and the route's parameters.
    """
    def decorate(handler: Callable) -> Callable:
        @wraps(handler)
        async def page(view: Any, request: Any, **kwargs: Any) -> Any:
            if not bearer_ok(request.headers.get("Authorization"), token):
                return json_answer(view, {"error": "unauthorized: send Authorization: Bearer <LOYALTY_API_TOKEN>"},
                                   401, {"WWW-Authenticate": 'Bearer realm="loyalty"'})
            try:
                return await handler(*context, view, request, **kwargs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                errors.report("http request failed", f"{route} {type(exc).__name__}", at=_where(exc))
                return json_answer(view, {"error": "internal error"}, 500)
        return page
    return decorate


class _ServerErrorLines(logging.Filter):
    """Turns aiohttp's own 'Error handling request' records (a traceback each) into ErrorLog lines."""

    def __init__(self, errors: ErrorLog) -> None:
        super().__init__()
        self.errors = errors

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        self.errors.report("http request refused", f"server {type(exc).__name__ if exc else record.levelname}")
        return False


def bound_server_errors(errors: ErrorLog) -> None:
    """Make aiohttp answer a malformed request (say, an 8 KB path) without quoting it, and log it sparingly.

    aiohttp answers such requests itself, before any view, with up to a hundred bytes of the request in the
    body and a traceback in the log. Checked with aiohttp 3.14 (RequestHandler.handle_error and its logger).
    """
    logging.getLogger("aiohttp.server").addFilter(_ServerErrorLines(errors))
    if getattr(RequestHandler.handle_error, "_bounded", False):
        return
    original = RequestHandler.handle_error

    def handle_error(self: Any, request: Any, status: int = 500, exc: Any = None, message: Any = None) -> Any:
        if message is not None:  # the parser's text, which quotes the request
            message = f"{status} {HTTPStatus(status).phrase}"
        return original(self, request, status, exc, message)

    handle_error._bounded = True  # type: ignore[attr-defined]
    RequestHandler.handle_error = handle_error  # type: ignore[method-assign]
