"""`replay --verify` compares the output topics with the outputs derived from the log, by deterministic id."""
from __future__ import annotations

import orjson

import tools.verify
from projections.state import CustomerState
from streams.kafka_log import LogRecord
from streams.settings import Settings
from tools.verify import output_differences, output_id, value_digest

LEDGER, UPDATES, TRIGGERS = "loyalty-ledger", "customer-updates", "campaign-triggers"


def entry(n: int, points: int, balance: int, customer: str = "c1") -> bytes:
    return orjson.dumps({"entry_id": f"{customer}:{n}", "customer_id": customer, "occurred_at": "2026-01-01T00:00:00Z",
                         "kind": "earn", "points": points, "balance_after": balance, "source_event_id": f"e{n}"})


def trigger(period: str) -> bytes:
    return orjson.dumps({"trigger_id": f"birthday:c1:{period}", "campaign": "birthday", "customer_id": "c1"})


UPDATE = orjson.dumps({"customer_id": "c1", "kind": "tier_changed", "from": "standard", "to": "premium"})


def derived(topics: dict[str, list[bytes]]) -> dict[str, dict[str, bytes]]:
    return {topic: {output_id(topic, v, orjson.loads(v)): value_digest(v) for v in values}
            for topic, values in topics.items()}


def compare(monkeypatch, expected: dict, on_topics: dict, balance: int) -> dict:
    """Run the comparison with `on_topics` standing in for what the broker holds."""
    monkeypatch.setattr(tools.verify, "read_topic", lambda broker, topic: [
        LogRecord(0, n, None, b"c1", value) for n, value in enumerate(on_topics.get(topic, []))])
    state = CustomerState("c1", 0)
    state.points_balance = balance
    return output_differences(Settings(broker="kafka://127.0.0.1:1"), derived(expected), {"c1": state})


def test_the_same_outputs_sent_twice_are_identical(monkeypatch):
    outputs = {LEDGER: [entry(1, 10, 10), entry(2, 5, 15)], TRIGGERS: [trigger("2026")], UPDATES: [UPDATE]}
    twice = {topic: values + values for topic, values in outputs.items()}
    report = compare(monkeypatch, outputs, twice, balance=15)
    assert report["identical"] is True
    assert report["topics"][LEDGER] == {"expected": 2, "found": 2, "missing": 0, "extra": 0, "different": 0,
                                        "two_contents": 0, "examples": {"missing": [], "extra": [], "different": [],
                                                                        "two_contents": []}}


def test_missing_extra_and_different_records_and_a_balance_off_its_ledger_are_reported(monkeypatch):
    expected = {LEDGER: [entry(1, 10, 10), entry(2, 5, 15)], TRIGGERS: [trigger("2026")], UPDATES: [UPDATE]}
    on_topics = {LEDGER: [entry(1, 10, 10), entry(3, 7, 17)],          # c1:2 lost, c1:3 never derived
                 TRIGGERS: [trigger("2026"), orjson.dumps({"trigger_id": "birthday:c1:2026", "x": 1})],
                 UPDATES: []}
    report = compare(monkeypatch, expected, on_topics, balance=15)
    assert report["identical"] is False
    assert report["topics"][LEDGER]["examples"] == {"missing": ["c1:2"], "extra": ["c1:3"], "different": [],
                                                    "two_contents": []}
    assert report["topics"][TRIGGERS]["examples"]["different"] == ["birthday:c1:2026"]
    assert report["topics"][UPDATES]["missing"] == 1
    assert report["balance_not_ledger_sum"] == {"customers": 1, "examples": ["c1"]}  # 15 != 10 + 7


def test_an_id_sent_with_two_contents_is_its_own_finding_and_the_text_names_it(monkeypatch, capsys):
    # The derived run sent the trigger with the first content only; the topic holds it twice, differently.
    second = orjson.dumps({"trigger_id": "birthday:c1:2026", "campaign": "birthday", "customer_id": "c1", "x": 1})
    expected = {TRIGGERS: [trigger("2026")]}
    report = compare(monkeypatch, expected, {TRIGGERS: [trigger("2026"), second]}, balance=0)
    assert report["identical"] is False
    assert report["topics"][TRIGGERS]["two_contents"] == 1
    assert report["topics"][TRIGGERS]["examples"]["two_contents"] == ["birthday:c1:2026"]
    tools.verify.print_differences({"outputs": report, "identical": False, "differences": []})
    lines = capsys.readouterr().err.splitlines()
    assert any("1 ids sent with two different contents, e.g. birthday:c1:2026" in line for line in lines), lines
    # a difference alone still names an example (the text once listed only missing and extra ones)
    assert any(line.endswith("different (of 1); e.g. birthday:c1:2026") for line in lines), lines
