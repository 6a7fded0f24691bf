"""Answer query commands from a running worker (HTTP) or from a replayed store (offline)."""
from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Optional

import orjson

from projections.views import Totals, customer_view
from tools.store import ReplayStore, StoreError


class QueryError(RuntimeError):
    """The worker cannot be reached, or the store cannot be read."""


class HttpSource:
    """Reads projections from a worker's HTTP API (any worker: it routes to the key's owner)."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _get(self, path: str) -> Optional[dict]:
        """GET a JSON document; None on 404."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=self.timeout_s) as response:
                return orjson.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            if exc.code == 503:
                raise QueryError(_recovering(self.url, exc)) from None
            raise QueryError(f"{self.url}{path}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise QueryError(f"cannot reach a worker at {self.url} ({getattr(exc, 'reason', exc)}); "
                             f"is `loyalty worker` running? (--url / LOYALTY_URL)") from None
        except ValueError:  # urllib: "unknown url type"
            raise QueryError(f"--url: {self.url!r} is not a worker address such as http://127.0.0.1:6066") from None

    def customer(self, customer_id: str) -> Optional[dict]:
        return self._get("/customers/" + urllib.parse.quote(customer_id, safe=""))

    def segment(self, status: Optional[str], tier: Optional[str]) -> list[str]:
        query = urllib.parse.urlencode({k: v for k, v in (("status", status), ("tier", tier)) if v})
        return self._get(f"/segments?{query}")["customer_ids"]

    def stats(self, local: bool = False) -> dict:
        """Totals over every worker, or (local) over this worker's partitions only."""
        return self._get("/stats?scope=local" if local else "/stats")


def _recovering(url: str, exc: urllib.error.HTTPError) -> str:
    """Say that a worker is still recovering its partitions, with how far it got if it says so."""
    try:  # streams/views.py answers {"error": "recovering", "recovered": N, "partitions": M}
        body = orjson.loads(exc.read())
        progress = f" ({int(body['recovered'])} of {int(body['partitions'])} partitions)"
    except Exception:
        progress = ""
    return f"{url}: worker is recovering its state{progress}; retry in a moment"


class StoreSource:
    """Reads projections from a store written by `loyalty replay --out DIR` (no worker needed)."""

    def __init__(self, path: Path) -> None:
        try:
            self.store = ReplayStore(path)
        except StoreError as exc:
            raise QueryError(str(exc)) from None

    def customer(self, customer_id: str) -> Optional[dict]:
        state = self.store.get(customer_id)
        return None if state is None else customer_view(state)

    def segment(self, status: Optional[str], tier: Optional[str]) -> list[str]:
        return [s.customer_id for s in self.store.states()
                if (status is None or s.status == status) and (tier is None or s.tier == tier)]

    def stats(self) -> dict:
        return Totals.of(self.store.states()).to_dict()
