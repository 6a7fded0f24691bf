"""A worker serves its HTTP API beyond loopback only with a token, or when told to on purpose; topics honour erasure."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from streams.settings import DLQ_TOPIC, Settings
from streams.worker import StartupError, check_web_auth, is_loopback
from tools.cli import main


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("192.168.1.2", False), ("worker-1", False), ("", False),
])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_a_non_loopback_bind_without_a_token_is_refused_unless_insecure():
    open_bind = Settings(web_host="0.0.0.0", api_token=None)
    with pytest.raises(StartupError, match="LOYALTY_API_TOKEN"):
        check_web_auth(open_bind)
    check_web_auth(open_bind, insecure_no_auth=True)
    check_web_auth(Settings(web_host="0.0.0.0", api_token="t0k3n"))
    check_web_auth(Settings(web_host="127.0.0.1", api_token=None))


def test_the_worker_command_refuses_in_one_line_before_touching_anything(tmp_path, monkeypatch):
    monkeypatch.delenv("LOYALTY_API_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["worker", "--web-host", "0.0.0.0", "--data-dir", str(tmp_path / "d"),
                                       "--broker", "kafka://127.0.0.1:1"])
    assert result.exit_code == 2, result.output
    assert "LOYALTY_API_TOKEN" in result.output and "--insecure-no-auth" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "d").exists()


def test_the_changelog_is_compacted_and_the_dlq_expires(monkeypatch):
    settings = Settings(app_id="shop")
    configs = settings.topic_configs()
    assert settings.changelog_topic in settings.topic_partitions()  # `loyalty topics create` makes it
    assert configs["shop-customers-changelog"] == {"cleanup.policy": "compact", "max.compaction.lag.ms": "604800000"}
    assert configs[DLQ_TOPIC] == {"cleanup.policy": "delete", "retention.ms": "604800000"}
    monkeypatch.setenv("LOYALTY_ERASURE_DAYS", "1.5")
    assert Settings().topic_configs()[DLQ_TOPIC]["retention.ms"] == str(36 * 3600 * 1000)


def test_topics_create_passes_the_configs(monkeypatch):
    seen = {}

    def create_topics(bootstrap, topics, replication_factor=1, configs=None):
        seen.update(topics=topics, configs=configs)
        return dict(topics)
    monkeypatch.setattr("tools.broker.create_topics", create_topics)
    monkeypatch.setattr("tools.broker.wait_for_broker", lambda *a, **k: None)
    result = CliRunner().invoke(main, ["topics", "create", "--app-id", "shop", "--partitions", "2"])
    assert result.exit_code == 0, result.output
    assert seen["topics"]["shop-customers-changelog"] == 2
    assert seen["configs"] == Settings(app_id="shop").topic_configs()


def test_the_customer_table_changelog_is_declared_with_the_same_configs(tmp_path):
    from streams.app import create_app
    app = create_app(Settings(data_dir=tmp_path, app_id="shop"))
    topic = app.tables["customers"].changelog_topic
    assert topic.compacting and topic.config["max.compaction.lag.ms"] == "604800000"
