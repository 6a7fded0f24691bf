"""The other workers of the group, found through the partition assignment and asked with the API token."""
from __future__ import annotations

import asyncio
from typing import Any, NamedTuple, Optional

import aiohttp
import orjson
from kafka.partitioner.default import murmur2

from streams.http_guard import ErrorLog, auth_header

PEER_TIMEOUT_S = 5.0
# Set on a request one worker forwards to another: the receiver answers it itself, so two workers that
# disagree about an assignment for a moment cannot forward a request back and forth.
FORWARDED_HEADER = "X-Loyalty-Forwarded"


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives a key: where the producers put it."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class PeerAnswer(NamedTuple):
    """A peer's HTTP status and JSON body."""
    status: int
    body: Any


class PeerUnavailable(Exception):
    """A peer did not answer (refused, timed out, or not a JSON answer)."""


class Peers:
    """Reaches the worker that owns a partition, and gathers local documents from every other worker."""

    def __init__(self, app: Any, table: Any, partitions: int, token: Optional[str], errors: ErrorLog,
                 timeout_s: float = PEER_TIMEOUT_S) -> None:
        self.app, self.table, self.partitions, self.errors = app, table, partitions, errors
        self.headers = {**auth_header(token), FORWARDED_HEADER: "1"}
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    @property
    def own_url(self) -> str:
        return str(self.app.conf.canonical_url).rstrip("/")

    def owners(self) -> dict[int, str]:
        """Map each partition of the customer table to the URL of the worker that owns it now."""
        owners = {}
        for url, topics in self.app.router.table_metadata(self.table.name).items():
            for partitions in topics.values():
                for partition in partitions:
                    owners[partition] = str(url).rstrip("/")
        return owners

    async def get(self, url: str, path: str) -> PeerAnswer:
        """GET path from the worker at url (PeerUnavailable if it does not answer in time)."""
        try:
            async with self.app.http_client.get(url + path, headers=self.headers, timeout=self.timeout) as response:
                return PeerAnswer(response.status, orjson.loads(await response.read()))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, orjson.JSONDecodeError) as exc:
            self.errors.report("peer worker unavailable", f"peer {type(exc).__name__}", peer=url)
            raise PeerUnavailable(url) from None

    async def gather(self, path: str) -> tuple[list[dict], list[int]]:
        """GET a local-scope document from every other worker; return the documents and the partitions missed."""
        by_peer: dict[str, list[int]] = {}
        owners = self.owners()
        for partition, url in owners.items():
            if url != self.own_url:
                by_peer.setdefault(url, []).append(partition)
        unowned = [p for p in range(self.partitions) if p not in owners]

        async def one(url: str) -> Optional[dict]:
            try:
                answer = await self.get(url, path)
            except PeerUnavailable:
                return None
            if answer.status != 200:  # e.g. 503 while it recovers, 401 if the tokens differ
                self.errors.report("peer worker refused", f"peer HTTP {answer.status}", peer=url)
                return None
            return answer.body

        urls = sorted(by_peer)
        docs = await asyncio.gather(*(one(url) for url in urls))
        missing = sorted([*unowned, *(p for url, doc in zip(urls, docs) if doc is None for p in by_peer[url])])
        return [doc for doc in docs if doc is not None], missing
