"""The whole stack (`python -m stack run`) against backends a test provides, on
loopback, stopped again however the test ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any

from stack import launch
from tests.e2e.client import Api
from tests.ha.clusters import Processes, Service

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
    # The environment it was started with: another host's workers use the same.
    env: dict[str, str]

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
        yield RunningStack(api, process, log, env)
    finally:
        launch.stop(process, timeout=30)


def worker_host(
    processes: Processes, stack: RunningStack, hostname: str, data_dir: Path
) -> Service:
    """Another host's workers for `stack`: `python -m stack workers` (partition workers
    and the callbacks worker, supervised) with the same backends and settings, its own
    HOSTNAME (so its Celery node names are `partitions-0@<hostname>`, ...) and data
    folder. Registered in `processes`, so it is stopped however the test ends;
    `Service.kill()` is the host's crash."""
    env = {**stack.env, "HOSTNAME": hostname, "WALLET_DATA_DIR": str(data_dir)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return processes.start(
        f"workers-{hostname}", [sys.executable, "-m", "stack", "workers"], env=env, cwd=launch.ROOT
    )


def consumers(stack: RunningStack) -> dict[str, list[str]]:
    """Celery node name -> the partition queues it consumes, asked of the live workers
    over the broker (as Flower does)."""
    found = _inspect(
        stack, "{n: sorted(q['name'] for q in qs) for n, qs in (i.active_queues() or {}).items()}"
    )
    return {
        node: [q for q in queues if q.startswith("partition.")] for node, queues in found.items()
    }


def drains_run(stack: RunningStack) -> dict[str, int]:
    """Celery node name -> how many drain tasks (wallet.apply_partition) it has run."""
    return _inspect(
        stack,
        "{n: s.get('total', {}).get('wallet.apply_partition', 0) "
        "for n, s in (i.stats() or {}).items()}",
    )


def _inspect(stack: RunningStack, expression: str) -> Any:
    """`expression` over `i`, a Celery inspector of the stack's broker, in a process of
    its own (this one's Celery app is configured for the test run's own broker)."""
    code = (
        "import json; from worker.app import app; i = app.control.inspect(timeout=2); "
        f"print(json.dumps({expression}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=stack.env,
        cwd=launch.ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])
