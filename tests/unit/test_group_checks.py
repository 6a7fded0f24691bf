"""The start-up checks against the group's changelog: a new group (no changelog topic yet) passes them."""
from __future__ import annotations

import streams.kafka_log
from schemas.policy import Policy
from streams.settings import Settings
from streams.worker import check_group_clock, check_group_policy, group_clocks, last_clock_records


def test_a_group_without_a_changelog_topic_is_new_and_every_check_passes(monkeypatch, tmp_path):
    def no_such_topic(broker, topic, timeout_s=10.0):
        raise KeyError(topic)  # what high_watermarks raises for an unknown topic
    monkeypatch.setattr(streams.kafka_log, "high_watermarks", no_such_topic)
    policy_file = tmp_path / "loyalty.toml"
    policy_file.write_text("")
    settings = Settings(broker="kafka://127.0.0.1:1", policy_file=str(policy_file))
    assert last_clock_records(settings) == {}
    assert group_clocks(settings) == set()
    check_group_clock(settings)
    check_group_policy(settings, Policy())
