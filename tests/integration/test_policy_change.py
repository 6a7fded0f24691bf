"""Issue 22: a rule change in the log takes effect at its time, the same live, in replay and in time travel."""
from __future__ import annotations

import signal
import time
import urllib.request

import orjson
import pytest

from schemas.policy import Policy, load_policy
from schemas.policy_doc import policy_changed_document, policy_version
from schemas.timeutil import parse_rfc3339_ms
from streams.kafka_log import read_topic
from streams.settings import DLQ_TOPIC
from tests.fixtures.kafka import wait_for
from tests.integration.oracles import (
    assert_equals_uninterrupted_run, assert_live_states_equal_fold, assert_outputs_equal_uninterrupted_run,
    distinct_valid_events, fold_input_log, history, ledger_entries,
)
from tests.integration.test_faults import (
    FAST_RESTART, SteadyProducer, check_uninterrupted, note, ready, seeded, stopped_cleanly, wait_all_applied, watch,
)
from tests.support.events import event_line
from tools.broker import free_port
from tools.store import ReplayStore

pytestmark = pytest.mark.broker

MID = "2025-05-12T00:00:00Z"  # the middle of the synthetic history's time
BEFORE_TOML = '[rewards.mug]\npoints = 50\ncoupon_value = "10.00"\nvalid_days = 30\n' \
              '[rewards.tea]\npoints = 20\ncoupon_value = "5.00"\nvalid_days = 30\n'
AFTER_TOML = '[tier]\nvip_min = "1200.00"\n[earn.multiplier]\nstandard = "2"\npremium = "2.5"\nvip = "3"\n' \
             '[rewards.tea]\npoints = 20\ncoupon_value = "5.00"\nvalid_days = 30\n'


def scripted(before: bool) -> list[bytes]:
    """Customers whose fate the change decides: before MID (before=True) or after it."""
    if before:
        return [event_line("s1", "order.paid", "p-1", "2025-05-01T00:00:00Z", order_id="o1", amount="1500.00"),
                event_line("s2", "reward.claimed", "p-1", "2025-05-02T00:00:00Z", claim_id="k1", reward_id="mug")]
    return [event_line("s3", "reward.claimed", "p-1", "2025-05-13T00:00:00Z", claim_id="k2", reward_id="mug"),
            event_line("s4", "order.paid", "p-2", "2025-05-14T00:00:00Z", order_id="o2", amount="100.00")]


def customer(store_dir, customer_id: str):
    store = ReplayStore(store_dir)
    try:
        return next(s for s in store.states() if s.customer_id == customer_id)
    finally:
        store.close()


def test_a_change_in_the_middle_of_history_is_the_same_live_in_replay_and_in_time_travel(cluster, tmp_path):
    """Two workers (one killed, one stopped around the change), replay, --verify, --until and the oracle agree."""
    (tmp_path / "before.toml").write_text(BEFORE_TOML)
    (tmp_path / "after.toml").write_text(AFTER_TOML)
    lines = history(3000, 200, seed=31)
    cut = next(n for n, line in enumerate(lines) if line.startswith(b"{") and orjson.loads(line).get(
        "occurred_at", "") >= "2025-05-01")
    first, second = lines[:cut] + scripted(True), lines[cut:] + scripted(False)
    tampered = policy_changed_document(Policy(), MID, "2025-01-01T00:00:00Z", "bad-1")
    tampered["payload"]["policy"]["tier"]["vip_min"] = "1500.00"  # the version no longer matches
    workers = [cluster.worker("a"), cluster.worker("b")]
    for args in (("before.toml", "--effective", "2000-01-01T00:00:00Z", "--name", "launch"),
                 ("after.toml", "--effective", MID, "--name", "spring")):
        result = cluster.loyalty("policy", "publish", str(tmp_path / args[0]), *args[1:])
        assert result.returncode == 0, result.stderr.decode()
        if args[-1] == "launch":
            cluster.produce_lines(first + [orjson.dumps(tampered)])
    # Restarts around the effective time: kill -9 with the change scheduled, then a clean stop after it.
    workers[1].kill()
    workers[1].start()
    half = len(second) // 2
    cluster.produce_lines(second[:half])
    workers[0].stop()
    workers[0].start()
    cluster.produce_lines(second[half:])
    sent = first + second
    expected = distinct_valid_events(sent)
    wait_for(lambda: workers[0].stats()["events_applied"] == expected, 120, "both workers to apply every event")

    # Live: the change reached the customers at MID (tier at once, earning and the catalog from then on).
    p1, p2 = workers[0].get("/customers/p-1"), workers[0].get("/customers/p-2")
    assert p1["tier"] == "vip" and p2["points_balance"] == 200, (p1, p2)
    spring = p1["policy_version"]
    assert spring.startswith("spring@") and workers[0].stats()["policy_versions"] == [spring]
    metrics = "".join(urllib.request.urlopen(w.url + "/metrics", timeout=10).read().decode() for w in workers)
    assert f'version="{spring}"' in metrics and "loyalty_policy_info{" in metrics, "on the partitions' owners"
    # Replay, verify, the ledger and the in-process oracle agree customer by customer.
    assert_equals_uninterrupted_run(cluster, workers[0], sent, tmp_path / "replay")
    folded = fold_input_log(cluster)
    assert_outputs_equal_uninterrupted_run(cluster, folded)
    assert_live_states_equal_fold(workers[0], folded)
    updates = [orjson.loads(r.value) for r in read_topic(cluster.settings.broker, "customer-updates")]
    assert any(u["customer_id"] == "p-1" and u["kind"] == "tier_changed" and u["to"] == "vip"
               and u["at"] == MID for u in updates)
    assert any(u["customer_id"] == "p-1" and u["kind"] == "claim_rejected" and u["reason"] == "unknown_reward"
               for u in updates)
    # The tampered change went to the DLQ with its reason, and changed nothing.
    dlq = [orjson.loads(r.value) for r in read_topic(cluster.settings.broker, DLQ_TOPIC)]
    assert any("does not match the policy's content" in d["error"] for d in dlq), [d["error"] for d in dlq]

    # Time travel before and after the change.
    for until, tier in (("2025-05-11T23:00:00Z", "premium"), ("2025-05-12T01:00:00Z", "vip")):
        out = tmp_path / f"until-{tier}"
        result = cluster.loyalty("replay", "--until", until, "--out", str(out))
        assert result.returncode == 0, result.stderr.decode()
        assert customer(out, "p-1").tier == tier

    shown = orjson.loads(cluster.loyalty("policy", "show", "--json").stdout)
    assert [row["version"].split("@")[0] for row in shown["in_force"]] == ["spring"] and not shown["scheduled"]
    history_lines = cluster.loyalty("policy", "history").stdout.decode().splitlines()
    assert len(history_lines) == 2 and "launch@" in history_lines[0] and "spring@" in history_lines[1]

    # The what-if lays a file over the log's policies: the catalog stays (no claim newly rejected).
    (tmp_path / "cheap.toml").write_text('[tier]\nvip_min = "1000.00"\n')
    result = cluster.loyalty("replay", "--policy", str(tmp_path / "cheap.toml"), "--json")
    assert result.returncode == 0, result.stderr.decode()
    what_if = orjson.loads(result.stdout)["what_if"]
    assert what_if["policies"]["log"] == [spring] and what_if["policies"]["what_if"] == [spring]
    assert what_if["before"]["by_tier"]["vip"] < what_if["after"]["by_tier"]["vip"]

    # A worker started with a file that differs from the log's policy in force refuses, in one line.
    refused = cluster.loyalty("worker", "--clock", "event", "--web-port", str(free_port()), "--data-dir",
                              str(tmp_path / "data-refused"), env={"LOYALTY_POLICY": str(tmp_path / "before.toml")})
    assert refused.returncode == 2, refused.stderr.decode()[-2000:]
    assert "differs from LOYALTY_POLICY" in refused.stderr.decode() and "--policy-wins" in refused.stderr.decode()


def test_verify_names_a_policy_mismatch_before_the_customers(cluster, tmp_path):
    """Workers on a LOYALTY_POLICY file the replay was not given: verify says the policy differs, first."""
    (tmp_path / "vip3000.toml").write_text('[tier]\nvip_min = "3000.00"\n[earn.multiplier]\nstandard = "2"\n'
                                          'premium = "2"\nvip = "2"\n')
    worker = cluster.worker("w", extra_env={"LOYALTY_POLICY": str(tmp_path / "vip3000.toml")})
    cluster.produce_lines([event_line("e1", "order.paid", "c1", "2026-01-05T00:00:00Z", order_id="o1", amount="100")])
    wait_for(lambda: worker.stats()["events_applied"] == 1, 90, "the order to be applied")
    result = cluster.loyalty("replay", "--verify")
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert "verify: policy differs on partition" in stderr, stderr
    assert stderr.index("policy differs") < stderr.index("customers differ"), stderr


def _occurred_ms(line: bytes) -> int:
    """Return a line's event time (0 for a line that is not an event with one)."""
    doc = orjson.loads(line) if line.startswith(b"{") else {}
    return parse_rfc3339_ms(doc["occurred_at"]) if isinstance(doc.get("occurred_at"), str) else 0


def _stop(victim, sig: int) -> str:
    """Stop a worker with sig; a SIGTERM must end cleanly, whenever it comes (test_faults.stopped_cleanly)."""
    victim.proc.send_signal(sig)
    code = victim.proc.wait(90)
    if sig != signal.SIGKILL:
        assert stopped_cleanly(victim, sig, code), f"{victim.name} exited {code} on SIGTERM:\n{victim.log()[-3000:]}"
    return "kill -9" if sig == signal.SIGKILL else "SIGTERM"


def test_workers_stopped_at_random_around_the_effective_time_end_as_an_uninterrupted_run(cluster, tmp_path):
    """SIGTERM and kill -9 of two workers at random moments while the records around a change's time stream in:
    the ledger on its topic, the states and `replay --verify` are those of an uninterrupted run (the oracle)."""
    rng = seeded("policy change, stops around its time")
    (tmp_path / "after.toml").write_text(AFTER_TOML)
    lines = history(3000, 150, seed=rng.randrange(1000))
    mid_ms = parse_rfc3339_ms(MID)
    at = next(n for n, line in enumerate(lines) if _occurred_ms(line) >= mid_ms)
    before, around, after = lines[:at - 160], lines[at - 160:at + 160], lines[at + 160:]
    workers = [cluster.worker(f"w{n}", extra_env=FAST_RESTART) for n in (1, 2)]
    watch(workers, lambda: all(ready(w) for w in workers), 90, "the workers to start")
    result = cluster.loyalty("policy", "publish", str(tmp_path / "after.toml"), "--effective", MID, "--name", "spring")
    assert result.returncode == 0, result.stderr.decode()
    cluster.produce_lines(before)
    wait_all_applied(workers, distinct_valid_events(before), timeout_s=60)  # the clocks just before the change
    signals = [signal.SIGKILL, signal.SIGTERM, signal.SIGKILL, signal.SIGTERM]
    rng.shuffle(signals)
    done = []
    producer = SteadyProducer(cluster, around, rate=35)  # about 9 s of records spanning the change's time
    try:
        for n, sig in enumerate(signals):
            time.sleep(rng.uniform(0.3, 2.0))  # the random moment itself (the previous victim may be recovering)
            victim = workers[rng.randrange(2)]
            how = _stop(victim, sig)
            note(victim, f"{how} #{n + 1} around the change's time ({producer.written} of {len(around)} written)")
            done.append(f"{how} {victim.name} at {producer.written}/{len(around)}")
            victim.start()
        producer.finish()
    finally:
        producer.close()
    cluster.produce_lines(after)
    print(f"  stops around {MID}: {done}")
    wait_all_applied(workers, distinct_valid_events(lines), timeout_s=120)
    check_uninterrupted(cluster, workers, lines, tmp_path / "replay")
    # The ledger names the default policy before the change's time and the new one from then on (an event
    # older than the partition clock folded after the change is judged, and named, by the new one).
    spring = policy_version(load_policy(tmp_path / "after.toml"), "spring")
    entries, _ = ledger_entries(cluster)
    sides = {}
    for entry in entries.values():
        sides.setdefault(parse_rfc3339_ms(entry["occurred_at"]) >= mid_ms, set()).add(entry["policy_version"])
    assert sides[True] == {spring} and policy_version(Policy()) in sides[False], sides
