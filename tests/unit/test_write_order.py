"""The worker writes a batch as outputs, then changelog, then local state: a crash at any step loses no output."""
from __future__ import annotations

import asyncio

import pytest

from projections.customer import DEFAULT_POLICY
from streams.app import write_batch
from streams.metrics import LoyaltyMetrics
from streams.pipeline import Outgoing, Pipeline
from tests.support.folds import FoldsFrom


class FakeStore:
    def __init__(self, log: list) -> None:
        self.log = log

    def changelog(self, clock_ms: int, next_offset=None, schedule=None) -> list:
        return [(b"c1", b"{}"), (b"\x00partition-clock", b'{"clock_ms": %d}' % clock_ms)]

    def save(self, records: list) -> None:
        self.log.append(("save local state", len(records)))


class FakeFold:
    clock_ms = 42
    schedule = None


class FakeSender:
    def __init__(self, log: list, fail_at: str = "") -> None:
        self.log, self.fail_at = log, fail_at

    async def send_outputs(self, messages) -> None:
        await self._step("outputs acknowledged")

    async def send_changelog(self, changelogs) -> None:
        await self._step("changelog acknowledged")

    def mark_persisted(self) -> None:
        self.log.append(("persisted offsets", None))

    async def _step(self, what: str) -> None:
        await asyncio.sleep(0)
        if self.fail_at == what:
            raise ConnectionError(what)
        self.log.append((what, None))


def run(fail_at: str = "") -> list:
    log: list = []
    stores = {0: FakeStore(log)}
    pipeline = Pipeline(DEFAULT_POLICY, LoyaltyMetrics(), FoldsFrom(lambda p: FakeFold(), folded_until={0: 1}))
    pipeline.fold(0)
    outgoing = [Outgoing("loyalty-ledger", 0, b"c1", b"{}")]
    try:
        asyncio.run(write_batch(FakeSender(log, fail_at), stores, pipeline, outgoing, {0}))
    except ConnectionError:
        pass
    return [step for step, _ in log]


def test_outputs_are_acknowledged_before_the_changelog_and_the_changelog_before_local_state():
    assert run() == ["outputs acknowledged", "changelog acknowledged", "save local state", "persisted offsets"]


@pytest.mark.parametrize("fail_at", ["outputs acknowledged", "changelog acknowledged"])
def test_a_failed_send_leaves_the_local_state_as_it_was(fail_at):
    steps = run(fail_at)
    assert "save local state" not in steps and "persisted offsets" not in steps
    if fail_at == "outputs acknowledged":
        assert "changelog acknowledged" not in steps, "the changelog must wait for the outputs"
