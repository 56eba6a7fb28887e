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
    assert _command(compose, "flower") == commands.flower(flower_port).argv
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
    assert all(env == environments[0] for env in environments)
    env = environments[0]
    assert set(env) == names
    assert env["DATABASE_URL"] == "postgresql://postgres:postgres@postgres:5432/wallet"
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert env["WALLET_PARTITIONS"] == f"${{WALLET_PARTITIONS:-{defaults.partitions}}}"
    # The secrets have no default: compose refuses to start without them.
    for secret in ("WALLET_ADMIN_KEY", "FLOWER_BASIC_AUTH"):
        assert env[secret].startswith(f"${{{secret}:?")


def test_metrics_folder_is_one_volume_shared_by_api_and_workers(compose: dict[str, Any]) -> None:
    for service in ("api", "worker"):
        path = _env(compose, service)["PROMETHEUS_MULTIPROC_DIR"]
        assert f"metrics:{path}" in compose[service]["volumes"]


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
