"""States stored by earlier versions (a data dir, a changelog) load, and the fold goes on from them.

tests/fixtures/states_json.jsonl holds real bytes written by main before msgpack: the states of one
partition after the first half of a synthetic history (its first line says which and where it stopped).
tests/fixtures/states_msgpack_1.txt holds the same states as main stored them in FORMAT 1 (msgpack, the
counts' keys joined by "|"), base64, one a line.
"""
from __future__ import annotations

from pathlib import Path

import base64

import msgspec
import orjson
import pytest

from projections.customer import DEFAULT_POLICY
from projections.partition import MemoryStore, PartitionFold, SavedStateStore
from projections.state import COMPRESS_ABOVE, FORMAT, CustomerState
from schemas.validate import validate_message
from tools.synthetic import synthetic_history

_FIXTURES = Path(__file__).parent.parent / "fixtures"


def _fixture(kind: str = "json") -> tuple[dict, list[bytes]]:
    """The header and the stored states of a fixture: "json" (before msgpack) or "msgpack_1" (FORMAT 1)."""
    if kind == "json":
        header, *states = (_FIXTURES / "states_json.jsonl").read_bytes().splitlines()
        return orjson.loads(header), states
    header, *lines = (_FIXTURES / "states_msgpack_1.txt").read_bytes().splitlines()
    return orjson.loads(header), [base64.b64decode(line) for line in lines]


def _history() -> list:
    return [validate_message(orjson.dumps(doc)) for doc in synthetic_history(2400, 40, seed=23)]


def test_json_states_of_main_decode_and_store_again_as_msgpack_with_the_same_content():
    _, stored = _fixture()
    for raw in stored:
        state = CustomerState.from_bytes(raw)
        assert orjson.dumps(state.to_dict()) == raw  # nothing lost or changed on the way in
        again = state.to_bytes()
        assert again[:1] != b"{" and len(again) < len(raw)
        assert CustomerState.from_bytes(again).to_dict() == state.to_dict()


def test_format_1_states_of_main_decode_to_the_json_fixtures_content_and_store_again_in_format_2():
    _, as_json = _fixture("json")
    _, as_format_1 = _fixture("msgpack_1")
    assert all(msgspec.msgpack.decode(raw)[0] == 1 for raw in as_format_1 if raw[:1] != b"\x78")
    with_counts = 0
    for json_raw, raw in zip(as_json, as_format_1, strict=True):
        state = CustomerState.from_bytes(raw)
        assert state.to_dict() == CustomerState.from_bytes(json_raw).to_dict()
        assert all(isinstance(key, tuple) for key in [*state.daily_counts, *state.claims_per_year])
        with_counts += bool(state.daily_counts)
        again = CustomerState.from_bytes(state.to_bytes())
        assert again.to_dict() == state.to_dict() and again.daily_counts == state.daily_counts
    assert with_counts >= 10  # the keys that changed form are there to be read


@pytest.mark.parametrize("kind", ["json", "msgpack_1"])
def test_a_partition_stored_by_an_earlier_version_folds_on_exactly_as_one_never_stopped(kind):
    header, stored = _fixture(kind)
    events = _history()
    folded = header["folded"]
    through = PartitionFold(MemoryStore(), DEFAULT_POLICY)
    for offset, event in enumerate(events[:folded]):
        through.apply(event, offset)
    assert through.clock_ms == header["clock_ms"]

    saved = {CustomerState.from_bytes(raw).customer_id: raw for raw in stored}
    store = SavedStateStore(saved)
    resumed = PartitionFold(store, DEFAULT_POLICY, clock_ms=header["clock_ms"])
    resumed.load(CustomerState.from_bytes(raw) for raw in saved.values())
    for offset, event in enumerate(events[folded:], folded):
        expected = through.apply(event, offset)
        assert resumed.apply(event, offset) == expected, offset
        if offset % 50 == 0:  # the states written back (msgpack) and read again, as between batches
            store.save()
            store._cache.clear()
    assert {cid: store.get(cid).to_dict() for cid in saved} == {cid: through.store[cid].to_dict() for cid in saved}
    assert all(raw[:1] != b"{" for raw in store.saved.values())


def test_a_state_in_an_unknown_format_is_refused():
    _, stored = _fixture()
    plain = min((CustomerState.from_bytes(raw).to_bytes() for raw in stored), key=len)  # not compressed
    future = msgspec.msgpack.encode([FORMAT + 1, *msgspec.msgpack.decode(plain)[1:]])
    with pytest.raises(ValueError, match="unknown format"):
        CustomerState.from_bytes(future)


def test_a_large_state_is_stored_compressed_and_a_small_one_plain_both_loading_the_same():
    _, stored = _fixture()
    states = [CustomerState.from_bytes(raw) for raw in stored]
    by_size = sorted(states, key=lambda state: len(msgspec.msgpack.encode(state.to_dict())))
    for state, first in ((by_size[0], b"\xdc"), (by_size[-1], b"\x78")):
        raw = state.to_bytes()
        assert raw[:1] == first
        assert CustomerState.from_bytes(raw).to_dict() == state.to_dict()
    assert len(by_size[-1].to_bytes()) < COMPRESS_ABOVE
