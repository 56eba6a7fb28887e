"""The whole stack (`python -m stack run`) against backends a test provides, on
loopback, stopped again however the test ends."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

from stack import launch
from tests.e2e.client import Api

# Backends and settings the stack must not pick up from the environment of the test
# run (tests/conftest.py points DATABASE_URL and REDIS_URL at the test servers).
_OWN = (
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_SENTINELS",
    "REDIS_SENTINEL_MASTER",
    "PROMETHEUS_MULTIPROC_DIR",
    "WALLET_ADMIN_KEY",
)


@dataclass
class RunningStack:
    api: Api
    process: Popen[bytes]
    log: Path

    def tail(self, chars: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


@contextmanager
def running_stack(
    backends: Mapping[str, str], data_dir: Path, timeout: float = 90
) -> Iterator[RunningStack]:
    """`python -m stack run` with `backends` (DATABASE_URL, REDIS_URL or REDIS_SENTINELS
    and REDIS_SENTINEL_MASTER), sized for a 2-core machine, ready when the seed's
    opening balances are applied."""
    admin_key = f"wk_admin_ha_{uuid.uuid4().hex}"
    port, flower_port = launch.any_free_port(), launch.any_free_port()
    env = {key: value for key, value in os.environ.items() if key not in _OWN}
    env.update(
        backends,
        WALLET_ADMIN_KEY=admin_key,
        FLOWER_BASIC_AUTH=f"flower:{uuid.uuid4().hex}",
        PORT=str(port),
        FLOWER_PORT=str(flower_port),
        # Loopback only, as everything these tests start.
        GUNICORN_BIND=f"127.0.0.1:{port}",
        FLOWER_ADDRESS="127.0.0.1",
        WALLET_DATA_DIR=str(data_dir),
        WALLET_PARTITIONS="4",
        WALLET_WORKER_PROCESSES="2",
        WEB_CONCURRENCY="2",
        GUNICORN_THREADS="32",
        WALLET_DB_POOL_SIZE="4",
        WALLET_SWEEP_AFTER="2",
        PYTHONUNBUFFERED="1",
    )
    log = data_dir / "stack.log"
    process = launch.start(env, log)
    api = Api(f"http://127.0.0.1:{port}", admin_key)
    try:
        launch.wait_ready(
            process,
            lambda: (
                api.get("/readyz").status_code == 200
                and api.get("/v1/wallets/bob").status_code == 200
            ),
            log,
            timeout=timeout,
        )
        yield RunningStack(api, process, log)
    finally:
        launch.stop(process, timeout=30)
