"""A webhook receiver for delivery tests: a real HTTP server in a thread that misbehaves at random, and remembers."""
from __future__ import annotations

import hashlib
import hmac
import random
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, NamedTuple, Optional

import orjson

SIGNATURE_TOLERANCE_S = 300

# (behaviour, weight): what the receiver does with one request.
FLAKY = (("ok", 50), ("error", 15), ("throttle", 10), ("slow", 10), ("reset", 15))


class Request(NamedTuple):
    """One request as received: its idempotency key, body, whether its signature held, and what was answered."""
    key: Optional[str]
    body: dict
    signed: bool
    behaviour: str
    at: float


def signature_holds(secret: bytes, header: Optional[str], body: bytes, now_s: float) -> bool:
    """Check a `t=...,v1=...` signature as a receiver would (written here independently of the deliverer)."""
    try:
        fields = dict(part.split("=", 1) for part in (header or "").split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    expected = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", "")) and abs(now_s - timestamp) <= SIGNATURE_TOLERANCE_S


class Receiver:
    """A receiver on 127.0.0.1:port; `choose(body)` picks each answer's behaviour (random by default)."""

    def __init__(self, secret: bytes, seed: int = 1, weights=FLAKY, slow_s: float = 1.5,
                 choose: Optional[Callable[[dict], str]] = None) -> None:
        self.secret, self.slow_s = secret, slow_s
        rng, lock = random.Random(seed), threading.Lock()
        names, counts = zip(*weights)

        def pick(body: dict) -> str:
            with lock:
                return rng.choices(names, counts)[0]
        self.choose = choose or pick
        self.requests: list[Request] = []
        self.lock = lock
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/loyalty?token=abc"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def accepted(self) -> list[Request]:
        """The requests answered 200 at once (those the deliverer certainly saw succeed)."""
        with self.lock:
            return [r for r in self.requests if r.behaviour == "ok"]

    def all(self) -> list[Request]:
        with self.lock:
            return list(self.requests)

    def _handler(self) -> type:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = orjson.loads(raw)
                behaviour = receiver.choose(body)
                signed = signature_holds(receiver.secret, self.headers.get("X-Loyalty-Signature"), raw, time.time())
                with receiver.lock:
                    receiver.requests.append(Request(self.headers.get("Idempotency-Key"), body, signed, behaviour,
                                                     time.monotonic()))
                if behaviour == "reset":  # SO_LINGER 0: close with a TCP RST instead of an answer
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                if behaviour == "slow":  # longer than the deliverer waits: it must try again
                    time.sleep(receiver.slow_s)
                status = {"ok": 200, "slow": 200, "error": 500, "throttle": 429, "reject": 400,
                          "down": 503}[behaviour]
                try:
                    self.send_response(status)
                    if behaviour == "throttle":
                        self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the deliverer gave up waiting and closed
                    pass

        return Handler
