"""A worker's HTTP side probed from outside: tokens, no Faust pages, internal keys, bounded errors, a peer down."""
from __future__ import annotations

import concurrent.futures
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import orjson
import pytest

from streams.peers import key_partition
from tests.fixtures.kafka import wait_for
from tests.integration.oracles import customers_in, distinct_valid_events, history
from tools.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.broker

TOKEN = "api-token-for-tests-0123456789"
METRICS_TOKEN = "metrics-token-for-tests-987654"


def call(worker, path: str, token=None) -> tuple[int, dict, bytes]:
    """GET path; return the status, the headers and the body (errors included)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(worker.url + path, headers=headers), timeout=20) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture(scope="module")
def secured(module_cluster):
    """One worker with both tokens, holding a small history."""
    worker = module_cluster.worker("secured", extra_env={"LOYALTY_API_TOKEN": TOKEN,
                                                         "LOYALTY_METRICS_TOKEN": METRICS_TOKEN})
    lines = history(400, 40, seed=3)
    module_cluster.produce_lines(lines)
    wait_for(lambda: worker.stats()["events_applied"] == distinct_valid_events(lines), 90, "the history applied")
    return worker, sorted(customers_in(lines))


def test_every_route_but_metrics_and_health_wants_the_api_token(secured):
    worker, ids = secured
    for path in (f"/customers/{ids[0]}", "/segments?status=active", "/stats", "/stats?scope=local"):
        for token in (None, "wrong", TOKEN[:-1], METRICS_TOKEN):
            status, headers, body = call(worker, path, token)
            assert status == 401, (path, token)
            assert headers.get("WWW-Authenticate", "").startswith("Bearer"), path
            assert ids[0].encode() not in body
        assert call(worker, path, TOKEN)[0] == 200, path
    health = call(worker, "/health")
    assert health[0] == 200 and orjson.loads(health[2]) == {"status": "ok", "ready": True}


def test_metrics_want_their_own_token(secured):
    worker, _ = secured
    for token in (None, TOKEN):
        assert call(worker, "/metrics", token)[0] == 401
    status, _, body = call(worker, "/metrics", METRICS_TOKEN)
    assert status == 200 and b"loyalty_events_total" in body


def test_faust_pages_are_not_served(secured):
    worker, ids = secured
    for path in (f"/table/customers/{ids[0]}/", "/table/", "/router/", "/router/customers/", "/", "/graph/",
                 "/stats/", "/assignment/", "/performance/"):
        status, _, body = call(worker, path, TOKEN)
        assert status == 404, path
        assert ids[0].encode() not in body, path


@pytest.mark.parametrize("raw_id", ["%00partition-clock", "__faust%00offset__", "c%0A1", "x" * 65, "%7F"])
def test_an_id_the_schema_refuses_is_a_400_never_an_internal_key(secured, raw_id):
    worker, _ = secured
    status, _, body = call(worker, f"/customers/{raw_id}", TOKEN)
    assert status == 400, body
    answer = orjson.loads(body)
    assert list(answer) == ["error"] and answer["error"].startswith("not a customer id"), answer
    assert b"clock_ms" not in body


def test_an_unknown_customer_is_a_404_and_an_8kb_id_is_not_echoed(secured):
    worker, _ = secured
    status, _, body = call(worker, "/customers/nobody-here", TOKEN)
    assert status == 404 and b"nobody-here" in body
    for long_id in ("y" * 8000, "y" * 8192):  # the second is over aiohttp's request line limit
        status, _, body = call(worker, "/customers/" + long_id, TOKEN)
        assert status == 400 and "y" * 65 not in body.decode(), body[:200]
        assert len(body) < 300
    assert "y" * 64 in call(worker, "/customers/" + "y" * 8000, TOKEN)[2].decode()


def test_a_flood_of_internal_keys_gets_4xx_answers_and_no_traceback(secured):
    worker, _ = secured
    log_before = worker.log()
    paths = ["/customers/%00partition-clock", "/customers/__faust%00offset__", "/customers/" + "z" * 8192,
             "/customers/missing-1"] * 100
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda p: call(worker, p, TOKEN)[0], paths))
    assert set(statuses) == {400, 404}, sorted(set(statuses))
    grown = worker.log()[len(log_before):]
    assert "Traceback" not in grown and len(grown.splitlines()) <= 2, grown[-2000:]


def test_the_cli_sends_the_token_from_the_environment(secured, module_cluster):
    worker, ids = secured
    without = module_cluster.loyalty("query", "customer", ids[0], "--url", worker.url,
                                     env={"LOYALTY_API_TOKEN": ""})
    assert without.returncode == 2 and b"LOYALTY_API_TOKEN" in without.stderr, without.stderr
    assert len(without.stderr.decode().strip().splitlines()) == 1
    wrong = module_cluster.loyalty("query", "stats", "--url", worker.url, env={"LOYALTY_API_TOKEN": "nope"})
    assert wrong.returncode == 2 and b"refused" in wrong.stderr, wrong.stderr
    right = module_cluster.loyalty("query", "customer", ids[0], "--json", "--url", worker.url,
                                   env={"LOYALTY_API_TOKEN": TOKEN})
    assert right.returncode == 0, right.stderr
    assert orjson.loads(right.stdout)["customer_id"] == ids[0]


def test_a_peer_down_gives_partial_answers_and_503_for_its_customers(cluster):
    # A long session: the group keeps the dead worker's partitions assigned to it while we ask.
    env = {"LOYALTY_API_TOKEN": TOKEN, "LOYALTY_SESSION_TIMEOUT_S": "60"}
    a, b = cluster.worker("a", extra_env=env), cluster.worker("b", extra_env=env)
    lines = history(1500, 120, seed=8)
    cluster.produce_lines(lines)
    applied = distinct_valid_events(lines)

    def split_and_applied():
        local_a, local_b = a.get("/stats?scope=local"), b.get("/stats?scope=local")
        # Worker-to-worker requests carry the token: a's total includes b's partitions.
        return (local_a["customers"] > 0 and local_b["customers"] > 0
                and a.stats()["events_applied"] == applied == local_a["events_applied"] + local_b["events_applied"])
    wait_for(split_and_applied, 120, "both workers to hold partitions and every event applied")
    local_a = a.get("/stats?scope=local")
    full_segment = set(a.get("/segments?status=dormant")["customer_ids"])
    local_segment = set(a.get("/segments?status=dormant&scope=local")["customer_ids"])

    b.kill()
    stats = a.stats()
    assert stats["partial"] is True and stats["missing_partitions"], stats
    assert {k: stats[k] for k in local_a} == local_a  # what a holds itself, and nothing else
    missing = stats["missing_partitions"]
    segment = a.get("/segments?status=dormant")
    assert segment["partial"] is True and segment["missing_partitions"] == missing
    assert set(segment["customer_ids"]) == local_segment <= full_segment

    on_b = sorted(c for c in customers_in(lines) if key_partition(c.encode(), cluster.settings.partitions) in missing)
    status, headers, body = call(a, "/customers/" + urllib.parse.quote(on_b[0]), TOKEN)
    assert status == 503 and int(headers["Retry-After"]) > 0, body
    answer = orjson.loads(body)
    assert answer["error"] == "partition_unavailable"
    assert answer["partitions"] == [key_partition(on_b[0].encode(), cluster.settings.partitions)]

    cli = cluster.loyalty("query", "stats", "--json", "--url", a.url, env={"LOYALTY_API_TOKEN": TOKEN})
    assert cli.returncode == 0 and b"partial answer" in cli.stderr, cli.stderr
    cli = cluster.loyalty("query", "customer", on_b[0], "--url", a.url, env={"LOYALTY_API_TOKEN": TOKEN})
    assert cli.returncode == 2 and b"does not answer" in cli.stderr, cli.stderr
    # An export would look complete without b's members: it stops, naming the partitions; one page warns.
    cli = cluster.loyalty("query", "segment", "--status", "dormant", "--format", "csv", "--url", a.url,
                          env={"LOYALTY_API_TOKEN": TOKEN})
    assert cli.returncode == 2 and b"stopped incomplete" in cli.stderr and b"Traceback" not in cli.stderr, cli.stderr
    cli = cluster.loyalty("query", "segment", "--status", "dormant", "--limit", "5", "--url", a.url,
                          env={"LOYALTY_API_TOKEN": TOKEN})
    assert cli.returncode == 0 and b"partial answer" in cli.stderr, cli.stderr
    assert "Traceback" not in a.log()


def test_a_real_prometheus_with_the_deploy_scrape_config_sends_the_metrics_token(secured, tmp_path):
    """deploy/prometheus/prometheus.yml's job, pointed at this worker: up with the token file, down without."""
    import os
    import shutil
    import subprocess

    import yaml

    from tests.integration.test_prometheus import PROMETHEUS, _prometheus_query
    from tools.broker import free_port
    binary = PROMETHEUS if os.path.exists(PROMETHEUS) else shutil.which("prometheus")
    if not binary:
        if os.environ.get("CI"):
            pytest.fail(f"{PROMETHEUS} is missing: CI must install the Debian package `prometheus`")
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    worker, _ = secured
    deploy = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    with_token = deploy["scrape_configs"][0]
    token_file = tmp_path / "metrics-token"
    token_file.write_text(METRICS_TOKEN)  # what compose writes from .env
    without_token = {k: v for k, v in with_token.items() if k != "authorization"}
    jobs = [{**with_token, "authorization": {**with_token["authorization"], "credentials_file": str(token_file)}},
            {**without_token, "job_name": "no-token"}]
    for job in jobs:
        job["static_configs"] = [{"targets": [f"127.0.0.1:{worker.web_port}"]}]
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"global": {"scrape_interval": "1s"}, "scrape_configs": jobs}))
    port = free_port()
    with open(tmp_path / "prometheus.log", "wb") as log:
        proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"

            def scraped():
                assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
                up = {r["metric"]["job"]: float(r["value"][1]) for r in _prometheus_query(base, "up")}
                return up if len(up) == 2 else None
            up = wait_for(scraped, 60, "prometheus to scrape both jobs", interval_s=0.5)
            assert up == {with_token["job_name"]: 1.0, "no-token": 0.0}
        finally:
            stop_process(proc)
