"""Answer query commands from a running worker (HTTP) or from a replayed store (offline)."""
from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Optional

import click
import orjson

from projections.explain import explain
from projections.documents import Totals, customer_view, ledger_page, member_row
from streams.peers import key_partition
from schemas.policy import Policy, load_policy
from streams.segments import PageError, decode_cursor, encode_cursor
from tools.store import ReplayStore, StoreError


class QueryError(RuntimeError):
    """The worker cannot be reached, or the store cannot be read."""


class HttpSource:
    """Reads projections from a worker's HTTP API (any worker: it routes to the key's owner)."""

    def __init__(self, url: str, timeout_s: float = 10.0, token: Optional[str] = None) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.token = token or os.environ.get("LOYALTY_API_TOKEN") or None

    def _get(self, path: str) -> Optional[dict]:
        """GET a JSON document; None on 404."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            request = urllib.request.Request(self.url + path, headers=headers)
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return orjson.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            if exc.code == 503:
                raise QueryError(_unavailable(self.url, exc)) from None
            if exc.code == 400:  # e.g. a cursor the worker does not know: it says why
                raise QueryError(f"{self.url}: {_error_of(exc)}") from None
            if exc.code == 401:
                given = "was refused" if self.token else "is not set"
                raise QueryError(f"{self.url}: the worker wants its API token, and LOYALTY_API_TOKEN {given}") from None
            raise QueryError(f"{self.url}{path}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise QueryError(f"cannot reach a worker at {self.url} ({getattr(exc, 'reason', exc)}); "
                             f"is `loyalty worker` running? (--url / LOYALTY_URL)") from None
        except ValueError:  # urllib: "unknown url type"
            raise QueryError(f"--url: {self.url!r} is not a worker address such as http://127.0.0.1:6066") from None

    def customer(self, customer_id: str) -> Optional[dict]:
        return self._get("/customers/" + urllib.parse.quote(customer_id, safe=""))

    def explain(self, customer_id: str) -> Optional[dict]:
        return self._get("/customers/" + urllib.parse.quote(customer_id, safe="") + "/explain")

    def ledger(self, customer_id: str, limit: int, cursor: Optional[str] = None) -> Optional[dict]:
        query = urllib.parse.urlencode({"limit": limit, **({"cursor": cursor} if cursor else {})})
        return self._get("/customers/" + urllib.parse.quote(customer_id, safe="") + "/ledger?" + query)

    def segment(self, status: Optional[str], tier: Optional[str], value: Optional[str] = None) -> list[str]:
        query = urllib.parse.urlencode({k: v for k, v in (("status", status), ("tier", tier), ("value", value)) if v})
        doc = self._get(f"/segments?{query}")
        warn_if_partial(doc)
        return doc["customer_ids"]

    def page(self, status: Optional[str], tier: Optional[str], value: Optional[str], cursor: Optional[str],
             limit: int, members: bool) -> dict:
        """One page of a segment: `customer_ids`, `next` (the cursor of the page after, or None), `members`."""
        asked = {k: v for k, v in (("status", status), ("tier", tier), ("value", value), ("cursor", cursor)) if v}
        asked.update(limit=str(limit), **({"members": "1"} if members else {}))
        return self._get("/segments?" + urllib.parse.urlencode(asked))

    def stats(self, local: bool = False) -> dict:
        """Totals over every worker, or (local) over this worker's partitions only."""
        doc = self._get("/stats?scope=local" if local else "/stats")
        warn_if_partial(doc)
        return doc


def _unavailable(url: str, exc: urllib.error.HTTPError) -> str:
    """Say why a worker answered 503: it is recovering its partitions, or the owner of one is unreachable."""
    try:
        body = orjson.loads(exc.read())
    except Exception:
        body = {}
    if isinstance(body, dict) and body.get("error") == "partition_unavailable":
        partitions = ", ".join(str(int(p)) for p in body.get("partitions", []))
        return f"{url}: the worker that owns partition {partitions} does not answer; retry in a moment"
    try:  # streams/http_views.py answers {"error": "recovering", "recovered": N, "partitions": M}
        progress = f" ({int(body['recovered'])} of {int(body['partitions'])} partitions)"
    except Exception:
        progress = ""
    return f"{url}: worker is recovering its state{progress}; retry in a moment"


def _error_of(exc: urllib.error.HTTPError) -> str:
    """The `error` of a worker's JSON answer, or its HTTP status."""
    try:
        return str(orjson.loads(exc.read())["error"])
    except Exception:
        return f"HTTP {exc.code}"


def warn_if_partial(doc: dict) -> None:
    """Say on stderr that a gathered answer lacks partitions whose worker did not answer."""
    if doc.get("partial"):
        partitions = ", ".join(str(p) for p in doc.get("missing_partitions", []))
        click.echo(f"partial answer: the worker(s) owning partition {partitions} did not answer; "
                   f"their customers are not counted", err=True)


class StoreSource:
    """Reads projections from a store written by `loyalty replay --out DIR` (no worker needed)."""

    def __init__(self, path: Path, policy_file: Optional[str] = None) -> None:
        self.policy_file = policy_file
        try:
            self.store = ReplayStore(path)
        except StoreError as exc:
            raise QueryError(str(exc)) from None

    def customer(self, customer_id: str) -> Optional[dict]:
        state = self.store.get(customer_id)
        if state is None:
            return None
        meta = self.store.meta()
        if "versions" not in meta:  # a store of an earlier version names no policy
            return customer_view(state)
        partition = str(key_partition(customer_id.encode(), meta["partitions"]))
        return {**customer_view(state), "policy_version": meta["versions"].get(partition, meta["policy_versions"][0])}

    def segment(self, status: Optional[str], tier: Optional[str], value: Optional[str] = None) -> list[str]:
        return [s.customer_id for s in self.store.states()
                if (status is None or s.status == status) and (tier is None or s.tier == tier)
                and (value is None or s.value == value)]

    def page(self, status: Optional[str], tier: Optional[str], value: Optional[str], cursor: Optional[str],
             limit: int, members: bool) -> dict:
        """One page of a segment, as a worker answers it (the store is read in id order from the cursor)."""
        try:
            after = None if cursor is None else decode_cursor(cursor)
        except PageError as exc:
            raise QueryError(f"--cursor: {exc}") from None
        ids, rows = [], []
        for state in self.store.states(after):
            if (status is None or state.status == status) and (tier is None or state.tier == tier) \
                    and (value is None or state.value == value):
                if len(ids) == limit:
                    return {"customer_ids": ids, "next": encode_cursor(ids[-1]), "members": rows}
                ids.append(state.customer_id)
                if members:
                    rows.append(member_row(state))
        return {"customer_ids": ids, "next": None, "members": rows}

    def stats(self) -> dict:
        meta = self.store.meta()
        versions = {"policy_versions": meta["policy_versions"]} if "policy_versions" in meta else {}
        return {**Totals.of(self.store.states()).to_dict(), **versions}

    def ledger(self, customer_id: str, limit: int, cursor: Optional[str] = None) -> Optional[dict]:
        state = self.store.get(customer_id)
        return None if state is None else ledger_page(state, limit, int(cursor) if cursor else None)

    def explain(self, customer_id: str) -> Optional[dict]:
        """Explain a customer under the policy the store was replayed with, as of the store's clock."""
        state = self.store.get(customer_id)
        if state is None:
            return None
        meta = self.store.meta()
        # A store of an earlier version has no policy: the one this command is given (LOYALTY_POLICY).
        policy = Policy.model_validate(meta["policy"]) if "policy" in meta else load_policy(self.policy_file)
        # Never past the customer's own partition clock: the earliest of them (all equal after --until).
        clocks = [int(ms) for ms in meta.get("clocks", {}).values()]
        return explain(state, policy, min(clocks) if clocks else None)
