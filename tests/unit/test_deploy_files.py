"""docker-compose.yml and the Dockerfile run the same processes as `python -m stack`.

No Docker engine is needed: both files are parsed and compared with stack/commands.py,
the embedded servers' settings and the defaults in settings.py.
"""

from __future__ import annotations

import json
import re
import shlex
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml

import settings
from stack import commands
from stack.embedded import POSTGRES_SETTINGS, REDIS_SETTINGS

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("migrate", "api", "worker", "beat", "flower")
# Every process the application needs, and what each runs.
PROCESSES = ("postgres", "redis", *APP_SERVICES)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services: dict[str, Any] = loaded["services"]
    return services


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


@pytest.fixture
def defaults(monkeypatch: pytest.MonkeyPatch) -> settings.Settings:
    for name in ("PORT", "FLOWER_PORT", "WALLET_PARTITIONS"):
        monkeypatch.delenv(name, raising=False)
    return settings.load()


def test_every_process_is_a_service(compose: dict[str, Any]) -> None:
    assert set(PROCESSES) <= set(compose)


def test_every_application_service_runs_the_same_image(compose: dict[str, Any]) -> None:
    builds = {(json.dumps(compose[name]["build"]), compose[name]["image"]) for name in APP_SERVICES}
    assert builds == {('"."', "wallet-service:latest")}


def test_services_run_the_commands_of_python_m_stack(compose: dict[str, Any]) -> None:
    data_dir = Path(_env(compose, "beat")["WALLET_DATA_DIR"])
    flower_port = int(_env(compose, "flower")["FLOWER_PORT"])
    assert _command(compose, "api") == commands.api().argv
    assert _command(compose, "beat") == commands.beat(data_dir / "celerybeat-schedule").argv
    flower_data = Path(_env(compose, "flower")["WALLET_DATA_DIR"]) / "flower"
    assert _command(compose, "flower") == commands.flower(flower_port, flower_data).argv
    assert f"flower:{flower_data}" in compose["flower"]["volumes"]
    # The worker layout (queues per process) is defined once, in the stack's supervisor.
    assert _command(compose, "worker") == ["python", "-m", "stack", "workers"]
    assert _command(compose, "migrate") == ["python", "-m", "stack", "migrate"]


def test_dockerfile_default_command_is_the_api(dockerfile: str) -> None:
    cmd = re.search(r"^CMD (.+)$", dockerfile, re.MULTILINE)
    assert cmd is not None
    assert json.loads(cmd.group(1)) == commands.api().argv


def test_ports_match_the_defaults_in_settings(
    compose: dict[str, Any], dockerfile: str, defaults: settings.Settings
) -> None:
    for service, port, variable in (
        ("api", defaults.port, "PORT"),
        ("flower", defaults.flower_port, "FLOWER_PORT"),
    ):
        assert compose[service]["ports"] == [f"{port}:{port}"]
        assert _env(compose, service)[variable] == str(port)
        assert f"{variable}={port}" in dockerfile
    exposed = re.search(r"^EXPOSE (.+)$", dockerfile, re.MULTILINE)
    assert exposed is not None
    assert set(exposed.group(1).split()) == {str(defaults.port), str(defaults.flower_port)}


def test_application_services_share_one_environment(
    compose: dict[str, Any], defaults: settings.Settings
) -> None:
    names = {
        "DATABASE_URL",
        "REDIS_URL",
        "WALLET_ADMIN_KEY",
        "WALLET_PARTITIONS",
        "PORT",
        "FLOWER_PORT",
        "FLOWER_BASIC_AUTH",
        "PROMETHEUS_MULTIPROC_DIR",
        "WALLET_DATA_DIR",
    }
    environments = [_env(compose, name) for name in APP_SERVICES]
    env = environments[0]
    # Flower alone runs outside multiprocess mode (its series must not join /metrics).
    for name, other in zip(APP_SERVICES, environments, strict=True):
        expected = {**env, "PROMETHEUS_MULTIPROC_DIR": ""} if name == "flower" else env
        assert other == expected, name
    assert set(env) == names
    assert env["DATABASE_URL"] == "postgresql://postgres:postgres@postgres:5432/wallet"
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    # Empty unless set: each process then takes settings.default_partitions() (its cores).
    assert env["WALLET_PARTITIONS"] == "${WALLET_PARTITIONS:-}"
    # The secrets have no default: compose refuses to start without them.
    for secret in ("WALLET_ADMIN_KEY", "FLOWER_BASIC_AUTH"):
        assert env[secret].startswith(f"${{{secret}:?")


def test_metrics_folder_is_one_volume_shared_by_api_and_workers(compose: dict[str, Any]) -> None:
    for service in ("api", "worker"):
        path = _env(compose, service)["PROMETHEUS_MULTIPROC_DIR"]
        assert f"metrics:{path}" in compose[service]["volumes"]


def test_flower_is_not_a_multiprocess_metrics_writer(compose: dict[str, Any]) -> None:
    """Flower's flower_* series would otherwise be summed into the service's /metrics
    (the folder is shared) and stay there, stale, after every Flower restart."""
    assert _env(compose, "flower")["PROMETHEUS_MULTIPROC_DIR"] == ""
    assert not any("metrics:" in volume for volume in compose["flower"]["volumes"])
    env = {"PROMETHEUS_MULTIPROC_DIR": "/data/metrics", "REDIS_URL": "redis://x"}
    assert commands.without_shared_metrics(env) == {"REDIS_URL": "redis://x"}


def test_startup_order(compose: dict[str, Any]) -> None:
    assert compose["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert compose["migrate"]["restart"] == "no"
    for service in ("api", "worker", "beat"):
        condition = compose[service]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"
    for service in ("postgres", "redis"):
        assert "healthcheck" in compose[service]


def test_backing_services_match_the_embedded_ones(compose: dict[str, Any]) -> None:
    assert compose["postgres"]["image"] == "postgres:16"
    assert compose["redis"]["image"] == "redis:7"
    pg = compose["postgres"]["command"]
    flags = dict(value.split("=", 1) for option, value in pairwise(pg) if option == "-c")
    assert flags == POSTGRES_SETTINGS
    redis_args = compose["redis"]["command"][1:]
    assert dict(zip(redis_args[::2], redis_args[1::2], strict=True)) == {
        f"--{key}": value for key, value in REDIS_SETTINGS.items()
    }


def test_image_installs_runtime_requirements_only_and_runs_unprivileged(dockerfile: str) -> None:
    instructions = "\n".join(
        line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")
    )
    assert re.search(r"^FROM python:3\.11-slim$", instructions, re.MULTILINE)
    assert "pip install -r requirements.txt" in instructions
    assert "requirements-dev" not in instructions
    user = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert user and user[-1] not in ("root", "0")
    assert "PYTHONPATH=/app" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".data", ".git"} <= set(ignored)


def _command(compose: dict[str, Any], service: str) -> list[str]:
    command = compose[service]["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def _env(compose: dict[str, Any], service: str) -> dict[str, str]:
    env = compose[service]["environment"]
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


# --- docker-compose.ha.yml: the same application on pg_auto_failover and Redis Sentinel.

PG_NODES = ("pg-node1", "pg-node2")
REDIS_REPLICAS = ("redis-replica1", "redis-replica2")
SENTINELS = ("sentinel1", "sentinel2", "sentinel3")
HA_BACKENDS = ("pg-monitor", *PG_NODES, "redis-master", *REDIS_REPLICAS, *SENTINELS)


@pytest.fixture(scope="module")
def compose_ha() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.ha.yml").read_text())
    services: dict[str, Any] = loaded["services"]
    return services


def test_ha_file_has_every_backend_and_application_service(compose_ha: dict[str, Any]) -> None:
    assert set(compose_ha) == {*HA_BACKENDS, *APP_SERVICES}


def test_ha_application_services_run_what_the_plain_file_runs(
    compose: dict[str, Any], compose_ha: dict[str, Any]
) -> None:
    for service in APP_SERVICES:
        assert _command(compose_ha, service) == _command(compose, service), service
        assert compose_ha[service]["image"] == compose[service]["image"]
    data_dir = Path(_env(compose_ha, "beat")["WALLET_DATA_DIR"])
    assert _command(compose_ha, "beat") == commands.beat(data_dir / "celerybeat-schedule").argv


def test_ha_database_url_names_both_nodes_and_wants_the_writable_one(
    compose_ha: dict[str, Any],
) -> None:
    from db import urls

    environments = [_env(compose_ha, name) for name in APP_SERVICES]
    assert all(env == environments[0] for env in environments)
    env = environments[0]
    assert "REDIS_URL" not in env
    parsed = urls.parse(env["DATABASE_URL"])
    assert parsed.hosts == tuple((node, 5432) for node in PG_NODES)
    assert dict(parsed.query) == {"target_session_attrs": "read-write"}
    assert parsed.database == "wallet"
    # The URL the stack cannot start without: SQLAlchemy must be able to read it.
    assert "host=pg-node1" in urls.sqlalchemy_url(env["DATABASE_URL"])
    for node in PG_NODES:
        argv = _command(compose_ha, node)
        assert argv[:3] == ["pg_autoctl", "create", "postgres"]
        assert _option(argv, "--hostname") == node
        assert _option(argv, "--dbname") == parsed.database
        assert _option(argv, "--monitor").startswith("postgres://autoctl_node@pg-monitor:5432/")
        assert "--run" in argv
    assert _command(compose_ha, "pg-monitor")[:3] == ["pg_autoctl", "create", "monitor"]


def test_ha_redis_is_found_through_three_sentinels_watching_the_master(
    compose_ha: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env(compose_ha, "api")
    monkeypatch.setenv("REDIS_SENTINELS", env["REDIS_SENTINELS"])
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", env["REDIS_SENTINEL_MASTER"])
    settings.load.cache_clear()
    try:
        config = settings.load()
    finally:
        monkeypatch.undo()
        settings.load.cache_clear()
    assert config.redis_sentinels == tuple((name, 26379) for name in SENTINELS)
    for sentinel in SENTINELS:
        script = _command(compose_ha, sentinel)[-1]
        monitor = re.search(r"sentinel monitor (\S+) (\S+) (\d+) (\d+)", script)
        assert monitor is not None
        assert monitor.groups() == (config.redis_sentinel_master, "redis-master", "6379", "2")
        assert "port 26379" in script
    master = compose_ha["redis-master"]["command"]
    assert master == [
        "redis-server",
        *[a for k, v in REDIS_SETTINGS.items() for a in (f"--{k}", v)],
    ]
    for replica in REDIS_REPLICAS:
        assert compose_ha[replica]["command"] == [*master, "--replicaof", "redis-master", "6379"]


def test_ha_startup_order(compose_ha: dict[str, Any]) -> None:
    assert compose_ha["migrate"]["restart"] == "no"
    assert compose_ha["migrate"]["depends_on"]["pg-node1"]["condition"] == "service_healthy"
    for service in ("api", "worker", "beat", "flower"):
        condition = compose_ha[service]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"
    assert compose_ha["pg-node2"]["depends_on"]["pg-node1"]["condition"] == "service_healthy"
    for backend in ("pg-monitor", *PG_NODES, "redis-master", *SENTINELS):
        assert "healthcheck" in compose_ha[backend], backend


def test_ha_postgres_image_brings_pg_auto_failover_for_postgresql_15(
    compose_ha: dict[str, Any],
) -> None:
    dockerfile = compose_ha["pg-monitor"]["build"]["dockerfile"]
    text = (ROOT / dockerfile).read_text()
    assert re.search(r"^FROM postgres:15$", text, re.MULTILINE)
    assert "postgresql-15-auto-failover" in text
    assert re.findall(r"^USER (\S+)$", text, re.MULTILINE)[-1] == "postgres"
    for node in ("pg-monitor", *PG_NODES):
        assert compose_ha[node]["build"]["dockerfile"] == dockerfile


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]
