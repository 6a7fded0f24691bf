"""Erasure holds in the engine's own data: outputs never carry personal fields; after customer.erased the live
state, its latest changelog record and a replay store hold none."""
from __future__ import annotations

import orjson
import pytest

from projections.state import CustomerState
from streams.settings import CAMPAIGNS_TOPIC, LEDGER_TOPIC, UPDATES_TOPIC
from tests.fixtures.kafka import wait_for
from tests.support.events import event_line as event
from tests.support.topics import read_topic
from tools.store import ReplayStore

pytestmark = pytest.mark.broker

PERSONAL = {"c1": ("1990-05-20", "Europe/Paris"), "c2": ("1985-11-02", "America/Sao_Paulo")}


HISTORY = [
    event("e1", "customer.registered", "c1", "2026-01-05T10:00:00+01:00", birthday="1990-05-20",
          timezone="Europe/Paris"),
    event("e2", "customer.registered", "c2", "2026-01-06T10:00:00-03:00", birthday="1985-11-02",
          timezone="America/Sao_Paulo"),
    event("e3", "order.paid", "c1", "2026-01-07T10:00:00Z", order_id="o1", amount="1500.00"),
    event("e4", "customer.checked_in", "c2", "2026-01-08T10:00:00Z"),
    event("t1", "clock.tick", None, "2026-05-21T00:00:00Z"),   # c1's birthday: a birthday trigger
    event("e5", "customer.profile_updated", "c1", "2026-05-25T10:00:00Z", timezone="Asia/Tokyo"),
    event("e6", "customer.erased", "c1", "2026-06-01T10:00:00Z"),
    event("t2", "clock.tick", None, "2026-11-03T00:00:00Z"),   # c2's birthday and a dormant c1
]
APPLIED = 6


def keys_and_strings(node, keys: set, strings: set) -> None:
    """Collect every key and every string value nested in a JSON document."""
    if isinstance(node, dict):
        keys.update(node)
        for value in node.values():
            keys_and_strings(value, keys, strings)
    elif isinstance(node, list):
        for value in node:
            keys_and_strings(value, keys, strings)
    elif isinstance(node, str):
        strings.add(node)


@pytest.fixture(scope="module")
def erased(module_cluster):
    worker = module_cluster.worker("erasure")
    module_cluster.produce_lines(HISTORY)
    wait_for(lambda: worker.stats()["events_applied"] == APPLIED, 90, "the history applied")
    return module_cluster, worker


def test_no_output_record_carries_a_personal_field(erased):
    cluster, _ = erased
    campaigns = []
    for topic in (LEDGER_TOPIC, UPDATES_TOPIC, CAMPAIGNS_TOPIC):
        records = read_topic(cluster.settings.broker, topic)
        assert records, topic
        for record in records:
            doc = record.json()
            keys, strings = set(), set()
            keys_and_strings(doc, keys, strings)
            assert not keys & {"birthday", "timezone"}, (topic, doc)
            for values in PERSONAL.values():
                assert not any(v in text for v in values for text in strings | keys), (topic, doc)
            assert b"Asia/Tokyo" not in record.value
            if topic == CAMPAIGNS_TOPIC:
                campaigns.append(doc["trigger_id"])
    assert {"birthday:c1:2026", "birthday:c2:2026"} <= set(campaigns)  # the history did use the birthdays


def test_the_query_answers_no_personal_field_after_erasure(erased):
    cluster, worker = erased
    result = cluster.loyalty("query", "customer", "c1", "--json", "--url", worker.url)
    assert result.returncode == 0, result.stderr
    view = orjson.loads(result.stdout)
    assert view["birthday"] is None and view["timezone"] is None
    assert view["points_balance"] == 1500  # points stay
    assert worker.get("/customers/c2")["birthday"] == "1985-11-02"  # only the erased customer forgets


def test_the_latest_changelog_record_of_an_erased_customer_holds_none(erased):
    cluster, _ = erased
    records = [r for r in read_topic(cluster.settings.broker, cluster.settings.changelog_topic) if r.key == b"c1"]
    # Records of batches before the erasure would still hold the birthday: Kafka's compaction
    # (cleanup.policy=compact, set by `loyalty topics create`) removes them; the embedded broker does not compact.
    assert records
    # The bytes as stored, and as decoded (a large state is stored compressed, where no text would show).
    for value in (records[-1].value, _decoded(records[-1].value)):
        assert b"1990-05-20" not in value and b"Europe/Paris" not in value and b"Asia/Tokyo" not in value


def test_a_replay_store_holds_no_personal_field_of_an_erased_customer(erased, tmp_path):
    cluster, _ = erased
    store_dir = tmp_path / "replay"
    result = cluster.loyalty("replay", "--out", str(store_dir))
    assert result.returncode == 0, result.stderr
    result = cluster.loyalty("query", "customer", "c1", "--json", "--store", str(store_dir))
    assert result.returncode == 0, result.stderr
    view = orjson.loads(result.stdout)
    assert view["birthday"] is None and view["timezone"] is None
    store = ReplayStore(store_dir)
    try:
        raw = dict(store.items())
    finally:
        store.close()
    c1 = [value for key, value in raw.items() if key.endswith(b"c1")]
    assert len(c1) == 1
    for value in (c1[0], _decoded(c1[0])):
        assert not any(v.encode() in value for v in (*PERSONAL["c1"], "Asia/Tokyo"))
    assert any(b"1985-11-02" in value for value in raw.values())  # c2 was not erased


def _decoded(stored: bytes) -> bytes:
    """A stored state as JSON text, whatever its stored form."""
    return orjson.dumps(CustomerState.from_bytes(stored).to_dict())
