"""`loyalty query ... | head`: a reader that closes the pipe early ends the command quietly, as in any Unix tool."""
from __future__ import annotations

from tests.fixtures.fake_worker import serve

import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler

import orjson
import pytest

IDS = [f"cust-{i:06d}" for i in range(200_000)]  # far more than a pipe buffer holds


class FakeWorker(BaseHTTPRequestHandler):
    """Answers /segments and /stats like a worker with many customers."""

    def do_GET(self) -> None:
        doc = {"status": "active", "tier": None, "customer_ids": IDS} if self.path.startswith("/segments") else {
            "customers": len(IDS), "by_status": {}, "by_tier": {}, "points_outstanding": 0, "events_applied": 0}
        body = orjson.dumps(doc)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def worker_url():
    with serve(FakeWorker) as url:
        yield url


@pytest.mark.parametrize("args", [("segment", "--status", "active"), ("segment", "--status", "active", "--json")])
def test_a_closed_pipe_ends_the_query_quietly(worker_url, args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    proc = subprocess.Popen([sys.executable, "-m", "tools", "query", *args, "--url", worker_url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    first = proc.stdout.readline()  # `| head -1`: read one line, then close the pipe
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    code = proc.wait(60)
    assert first.strip(), stderr
    assert stderr == "", stderr
    assert code in (0, 141), (code, stderr)
