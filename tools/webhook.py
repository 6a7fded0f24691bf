"""One webhook request: its signature and headers, the POST, and what the answer means for a retry."""
from __future__ import annotations

import hashlib
import hmac
import http.client
import random
import time
import urllib.error
import urllib.request
from email.utils import parsedate_to_datetime
from typing import NamedTuple, Optional

SIGNATURE_HEADER = "X-Loyalty-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
TOPIC_HEADER = "X-Loyalty-Topic"
_RETRYABLE_4XX = frozenset({408, 425, 429})  # the receiver asks to be tried again later


def signature(secret: bytes, timestamp_s: int, body: bytes) -> str:
    """Return the signature header's value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`."""
    mac = hmac.new(secret, str(timestamp_s).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp_s},v1={mac}"


def headers(secret: bytes, body: bytes, idempotency_key: str, topic: str) -> dict[str, str]:
    """Return the headers of one attempt (signed now: a retry hours later must not look like a replay)."""
    return {"Content-Type": "application/json", "User-Agent": "loyalty-deliver",
            SIGNATURE_HEADER: signature(secret, int(time.time()), body),
            IDEMPOTENCY_HEADER: idempotency_key, TOPIC_HEADER: topic}


class Answer(NamedTuple):
    """What one attempt got: the HTTP status (None: no answer), the Retry-After in seconds, and why it failed."""
    status: Optional[int]
    retry_after_s: Optional[float] = None
    error: str = ""

    @property
    def delivered(self) -> bool:
        """True for a 2xx answer."""
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        """True for timeouts, connection errors, 5xx, 408, 425 and 429."""
        return self.status is None or self.status >= 500 or self.status in _RETRYABLE_4XX

    @property
    def reason(self) -> str:
        """A short label for metrics and parked records: http_503, timeout, connection_error."""
        return f"http_{self.status}" if self.status is not None else self.error


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: a signed POST must reach the configured URL, or fail visibly."""

    def redirect_request(self, *args, **kwargs):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post(url: str, body: bytes, request_headers: dict[str, str], timeout_s: float) -> Answer:
    """POST body to url once; never raise for what the network or the receiver does."""
    request = urllib.request.Request(url, data=body, headers=request_headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            response.read()
            return Answer(response.status)
    except urllib.error.HTTPError as exc:
        with exc:
            return Answer(exc.code, retry_after_s(exc.headers.get("Retry-After")), f"HTTP {exc.code}")
    except urllib.error.URLError as exc:
        return Answer(None, error="timeout" if isinstance(exc.reason, TimeoutError) else "connection_error")
    except TimeoutError:
        return Answer(None, error="timeout")
    except (OSError, http.client.HTTPException):  # reset, refused, a cut or garbled answer
        return Answer(None, error="connection_error")


def retry_after_s(value: Optional[str], now_s: Optional[float] = None) -> Optional[float]:
    """Parse Retry-After (seconds, or an HTTP date) into seconds from now; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now_s is None else now_s))


def backoff_s(attempt: int, base_s: float, cap_s: float, rng: random.Random = random) -> float:
    """Return the wait before retry number `attempt` (1, 2, ...): exponential, capped, with full jitter.

    Full jitter (a uniform draw below the exponential bound) keeps many deliverers from retrying in step.
    """
    return rng.uniform(0, min(cap_s, base_s * 2 ** (attempt - 1)))
