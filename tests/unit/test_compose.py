"""The compose deployment: Prometheus scrapes every worker, docker compose accepts the file, closed by default."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS = ROOT / "deploy/prometheus/prometheus.yml"
GRAFANA = ROOT / "deploy/grafana"


def _load_yaml(path: Path) -> dict:
    """Parse one YAML file, skipping the test when PyYAML is missing."""
    yaml = pytest.importorskip("yaml", reason="pyyaml comes with the `test` extra")
    return yaml.safe_load(path.read_text())


def _image_entrypoint() -> list[str]:
    """Return the Dockerfile's exec-form ENTRYPOINT."""
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("ENTRYPOINT"):
            return json.loads(line.removeprefix("ENTRYPOINT"))
    return []


def _worker_services() -> dict[str, list[str]]:
    """Map each compose service that runs `loyalty worker` to its argv."""
    services = _load_yaml(COMPOSE)["services"]
    workers = {}
    for name, service in services.items():
        built_here = "build" in service
        entrypoint = service.get("entrypoint") or (_image_entrypoint() if built_here else [])
        command = service.get("command") or []
        argv = [*entrypoint, *(command.split() if isinstance(command, str) else command)]
        if argv[:2] == ["loyalty", "worker"]:
            workers[name] = argv
    return workers


# Prometheus scrapes every worker the compose file runs


def test_prometheus_scrapes_every_compose_worker():
    workers = _worker_services()
    assert set(workers) == {"worker-1", "worker-2"}
    scrape_configs = _load_yaml(PROMETHEUS)["scrape_configs"]
    targets = {
        target
        for job in scrape_configs
        if job.get("metrics_path", "/metrics") == "/metrics"
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    for name, argv in workers.items():
        web_port = argv[argv.index("--web-port") + 1] if "--web-port" in argv else "6066"
        assert f"{name}:{web_port}" in targets


def test_compose_mounts_the_grafana_files():
    grafana = _load_yaml(COMPOSE)["services"]["grafana"]
    provider = _load_yaml(GRAFANA / "provisioning/dashboards/loyalty.yml")["providers"][0]
    mounts = dict(volume.rsplit(":", 2)[:2] for volume in grafana["volumes"] if volume.startswith("./"))
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"


# docker compose itself accepts the file


def _compose_command() -> list[str]:
    """Return `docker compose` (v2 plugin) or `docker-compose` (Debian's v1), whichever works here."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return []


@pytest.fixture
def compose_command() -> list[str]:
    """The compose CLI; required in CI (`make test` installs Debian's docker-compose), optional elsewhere."""
    command = _compose_command()
    if not command:
        if os.environ.get("CI"):
            pytest.fail("CI must have docker compose or docker-compose (.ci/system-deps installs it)")
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    return command


def _compose_config(command: list[str], env_file: Path, compose: Path = COMPOSE, quiet: bool = True):
    """Run `compose config` with this env file and none of its variables in our own environment."""
    env = {k: v for k, v in os.environ.items() if k not in _env_example()}
    return subprocess.run([*command, "--env-file", str(env_file), "-f", str(compose), "config",
                           *(["-q"] if quiet else [])], capture_output=True, text=True, cwd=ROOT, env=env)


def _filled_env_file(tmp_path: Path) -> Path:
    """.env.example with a distinct value for every variable, as an operator fills it in."""
    path = tmp_path / "filled.env"
    path.write_text("".join(f"{name}=value-of-{name.lower()}\n" for name in _env_example()))
    return path


def test_docker_compose_accepts_the_file(compose_command, tmp_path):
    result = _compose_config(compose_command, _filled_env_file(tmp_path))
    assert result.returncode == 0, result.stderr


def test_docker_compose_rejects_a_broken_file(compose_command, tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("services:", "servics:", 1))
    assert _compose_config(compose_command, _filled_env_file(tmp_path), broken).returncode != 0


@pytest.mark.parametrize("unset", ["LOYALTY_API_TOKEN", "LOYALTY_METRICS_TOKEN", "GRAFANA_ADMIN_PASSWORD"])
def test_docker_compose_refuses_to_start_without_each_secret(compose_command, tmp_path, unset):
    lines = _filled_env_file(tmp_path).read_text().splitlines()
    env_file = tmp_path / "partial.env"
    env_file.write_text("".join(f"{line}\n" for line in lines if not line.startswith(unset + "=")))
    result = _compose_config(compose_command, env_file)
    assert result.returncode != 0 and unset in result.stderr, result.stderr
    # .env.example as it is (every value empty) is refused too: copying it is not enough.
    assert _compose_config(compose_command, ROOT / ".env.example").returncode != 0


def test_the_resolved_stack_publishes_only_grafana_on_loopback_and_passes_the_secrets(compose_command, tmp_path):
    result = _compose_config(compose_command, _filled_env_file(tmp_path), quiet=False)
    assert result.returncode == 0, result.stderr
    import yaml
    services = yaml.safe_load(result.stdout)["services"]
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert list(published) == ["grafana"]
    assert all(str(p.get("host_ip") if isinstance(p, dict) else p).startswith("127.0.0.1") for p in published["grafana"])
    for name in ("worker-1", "worker-2"):
        env = services[name]["environment"]
        assert env["LOYALTY_API_TOKEN"] == "value-of-loyalty_api_token"
        assert env["LOYALTY_METRICS_TOKEN"] == "value-of-loyalty_metrics_token"
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "value-of-grafana_admin_password"
    assert services["prometheus"]["environment"]["LOYALTY_METRICS_TOKEN"] == "value-of-loyalty_metrics_token"


# Closed by default: what the compose file publishes, and where its secrets come from


def _env_example() -> dict[str, str]:
    """The variables of .env.example and their values."""
    pairs = [line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    return {name.strip(): value.strip() for name, value in pairs}


REQUIRED = re.compile(r"\$\{([A-Z_]+):\?[^}]*\}")


def test_every_secret_comes_from_the_env_file_which_git_ignores():
    required = set(REQUIRED.findall(COMPOSE.read_text()))
    assert {"LOYALTY_API_TOKEN", "LOYALTY_METRICS_TOKEN", "GRAFANA_ADMIN_PASSWORD"} <= required
    example = _env_example()
    assert set(example) == required and not any(example.values())  # named there, no value to copy
    assert "/.env" in (ROOT / ".gitignore").read_text().splitlines()
    tracked = subprocess.run(["git", "ls-files", ".env", ".env.example"], capture_output=True, text=True, cwd=ROOT)
    if tracked.returncode == 0:  # a git checkout: the example is committed, the real file never
        assert tracked.stdout.split() == [".env.example"]


def test_only_grafana_is_published_and_only_on_loopback():
    services = _load_yaml(COMPOSE)["services"]
    published = {name: service["ports"] for name, service in services.items() if service.get("ports")}
    assert list(published) == ["grafana"]
    assert all(str(port).startswith("127.0.0.1:") for port in published["grafana"])
    assert not any(service.get("network_mode") == "host" for service in services.values())


def test_kafka_listens_on_the_compose_network_only():
    env = _load_yaml(COMPOSE)["services"]["kafka"]["environment"]
    assert "ports" not in _load_yaml(COMPOSE)["services"]["kafka"]
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "INTERNAL://kafka:9092"
    assert set(env["KAFKA_LISTENERS"].split(",")) == {"INTERNAL://:9092", "CONTROLLER://:9093"}


def test_every_worker_and_the_cli_have_the_api_token_and_the_workers_the_metrics_token():
    services = _load_yaml(COMPOSE)["services"]
    for name in (*_worker_services(), "cli"):
        env = services[name]["environment"]
        assert REQUIRED.fullmatch(env["LOYALTY_API_TOKEN"]).group(1) == "LOYALTY_API_TOKEN", name
    for name in _worker_services():
        env = services[name]["environment"]
        assert REQUIRED.fullmatch(env["LOYALTY_METRICS_TOKEN"]).group(1) == "LOYALTY_METRICS_TOKEN"
        # Bound beyond loopback inside the network: allowed only because the token is set (streams/worker.py).
        assert env["LOYALTY_WEB_HOST"] == "0.0.0.0" and "--insecure-no-auth" not in _worker_services()[name]
        assert "/health" in " ".join(services[name]["healthcheck"]["test"])


def test_prometheus_sends_the_metrics_token_it_gets_from_the_env_file():
    scrape = _load_yaml(PROMETHEUS)["scrape_configs"][0]
    token_file = scrape["authorization"]["credentials_file"]
    assert scrape["authorization"]["type"] == "Bearer"
    prometheus = _load_yaml(COMPOSE)["services"]["prometheus"]
    script = " ".join(prometheus["entrypoint"])
    assert f'"$$LOYALTY_METRICS_TOKEN" > {token_file}' in script and "exec /bin/prometheus" in script
    assert REQUIRED.fullmatch(prometheus["environment"]["LOYALTY_METRICS_TOKEN"])
    assert str(Path(token_file).parent) in prometheus["tmpfs"]  # in memory, never on a volume
    assert "ports" not in prometheus


def test_grafana_wants_a_login_with_the_password_from_the_env_file():
    env = _load_yaml(COMPOSE)["services"]["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert REQUIRED.fullmatch(env["GF_SECURITY_ADMIN_PASSWORD"]).group(1) == "GRAFANA_ADMIN_PASSWORD"


def test_the_topics_service_creates_them_with_the_erasure_configs():
    services = _load_yaml(COMPOSE)["services"]
    assert services["topics"]["command"][:2] == ["topics", "create"]  # compacted changelog, DLQ retention
    for name in ("topics", *_worker_services()):
        assert "LOYALTY_ERASURE_DAYS" in services[name]["environment"], name
        assert services[name]["environment"].get("LOYALTY_APP_ID") == services["topics"]["environment"].get(
            "LOYALTY_APP_ID"), name  # the changelog topics create makes is the one the workers use




def test_every_worker_and_the_cli_fold_by_the_mounted_policy_file():
    from schemas.policy import load_policy
    services = _load_yaml(COMPOSE)["services"]
    for name in [*_worker_services(), "cli"]:
        service = services[name]
        mounts = dict(volume.rsplit(":", 2)[:2] for volume in service["volumes"] if volume.startswith("./"))
        assert mounts.get("./deploy/loyalty.toml") == service["environment"]["LOYALTY_POLICY"], name
    assert load_policy(str(ROOT / "deploy/loyalty.toml")) is not None  # a valid policy: the workers start with it


def test_the_deliverer_runs_loyalty_deliver_and_prometheus_scrapes_its_metrics_port():
    service = _load_yaml(COMPOSE)["services"]["deliver"]
    script = service["entrypoint"][-1]
    assert "exec loyalty deliver " in script and "--secret-file /run/loyalty/webhook-secret" in script
    assert "/run/loyalty" in service["tmpfs"] and service["profiles"] == ["delivery"]
    port = re.search(r"--metrics-port (\d+) --metrics-host 0\.0\.0\.0", script).group(1)
    jobs = {job["job_name"]: job for job in _load_yaml(PROMETHEUS)["scrape_configs"]}
    assert jobs["loyalty-deliver"]["static_configs"][0]["targets"] == [f"deliver:{port}"]
