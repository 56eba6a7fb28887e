"""The whole stack, started as a user starts it (`python -m stack run`), over HTTP.

Its database link goes through a TCP proxy the tests can cut, its Redis is a real one
the tests can FLUSHALL, and its workers are real processes the tests can SIGKILL.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import redis
from sqlalchemy.engine import make_url

from stack import embedded, launch
from tests.conftest import Servers
from tests.e2e.client import Api
from tests.e2e.tcp_proxy import ProxyProcess

pytestmark = pytest.mark.e2e


@dataclass
class Stack:
    api: Api
    process: subprocess.Popen[bytes]
    proxy: ProxyProcess
    redis_url: str
    database_url: str  # direct, not through the proxy: for PostgreSQL's own statistics
    flower_url: str
    flower_auth: tuple[str, str]
    log: Path

    def workers(self, name_prefix: str = "partitions-") -> list[psutil.Process]:
        """The live Celery worker processes whose node name starts with the prefix."""
        found = []
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                cmdline = child.cmdline()
            except psutil.NoSuchProcess:
                continue
            if "worker" in cmdline and any(arg.startswith(name_prefix) for arg in cmdline):
                found.append(child)
        return found

    def worker_for(self, partition: int) -> psutil.Process:
        """The partition worker process that consumes `partition.{partition}`."""
        for worker in self.workers():
            queues = worker.cmdline()[worker.cmdline().index("-Q") + 1].split(",")
            if f"partition.{partition}" in queues:
                return worker
        raise LookupError(f"no worker consumes partition {partition}")

    def database_connections(self) -> int:
        """Connections open to the stack's database right now (all processes)."""
        import psycopg2

        with psycopg2.connect(self.database_url) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
            return int(cur.fetchone()[0])

    def node_name(self, worker: psutil.Process) -> str:
        """The Celery node name of a worker process (its -n, with %h expanded)."""
        import socket

        cmdline = worker.cmdline()
        return cmdline[cmdline.index("-n") + 1].replace("%h", socket.gethostname())

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of the service's /metrics, or None if the series is absent."""
        from prometheus_client.parser import text_string_to_metric_families

        body = self.api.get("/metrics").text
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return None

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def deadlocks(self) -> int:
        """PostgreSQL's count of deadlocks it detected in the stack's database."""
        import psycopg2

        with psycopg2.connect(self.database_url) as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_stat_force_next_flush()")
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            return int(cur.fetchone()[0])


@pytest.fixture(scope="session")
def stack(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    database = servers.database(f"wallet_e2e_{uuid.uuid4().hex[:12]}")
    embedded.ensure_database(database)
    target = make_url(database)
    proxy = ProxyProcess(target.host or "127.0.0.1", target.port or 5432)
    data_dir = tmp_path_factory.mktemp("stack")
    admin_key = f"wk_admin_e2e_{uuid.uuid4().hex}"
    port, flower_port = launch.any_free_port(), launch.any_free_port()
    flower_auth = ("flower", uuid.uuid4().hex)
    redis_url = f"{servers.redis}/2"
    env = {
        **os.environ,
        "DATABASE_URL": target.set(port=proxy.port).render_as_string(hide_password=False),
        "REDIS_URL": redis_url,
        "WALLET_ADMIN_KEY": admin_key,
        "FLOWER_BASIC_AUTH": ":".join(flower_auth),
        "PORT": str(port),
        "FLOWER_PORT": str(flower_port),
        "WALLET_DATA_DIR": str(data_dir),
        "WALLET_PARTITIONS": "8",
        "WALLET_WORKER_PROCESSES": "4",
        "PYTHONUNBUFFERED": "1",
        # A failing callback gives up in seconds, not an hour, so tests can watch it fail.
        "WALLET_CALLBACK_RETRY_FOR_SECONDS": "6",
        "WALLET_CALLBACK_BACKOFF_FIRST_SECONDS": "0.5",
        "WALLET_CALLBACK_BACKOFF_CAP_SECONDS": "2",
        "WALLET_RECONCILE_EVERY": "5",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    redis.Redis.from_url(redis_url).flushdb()
    log = data_dir / "stack.log"
    process = launch.start(env, log)
    base_url = f"http://127.0.0.1:{port}"
    api = Api(base_url, admin_key)
    try:
        # Ready: /readyz answers 200 and the seed's opening balances are applied.
        launch.wait_ready(
            process,
            lambda: (
                api.get("/readyz").status_code == 200
                and api.get("/v1/wallets/bob").status_code == 200
            ),
            log,
            timeout=120,
        )
        yield Stack(
            api=api,
            process=process,
            proxy=proxy,
            redis_url=redis_url,
            database_url=database,
            flower_url=f"http://127.0.0.1:{flower_port}",
            flower_auth=flower_auth,
            log=log,
        )
    finally:
        launch.stop(process, timeout=30)
        proxy.close()
        embedded.drop_database(database)


@pytest.fixture
def api(stack: Stack) -> Iterator[Api]:
    """The admin client; after each test, the ledger must reconcile."""
    yield stack.api
    report = stack.api.reconciliation()
    assert report["ok"] is True, report
