"""Real servers for the tests: PostgreSQL and Redis, embedded unless URLs are given.

With DATABASE_URL / REDIS_URL set, the tests use those servers; without them they start
the same embedded servers `make run` uses (under .data/test). Either way each run gets
a database of its own, migrated with `alembic upgrade head` and seeded, and dropped at
the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import settings
from db import urls
from stack import embedded

TEST_DATA = settings.DATA_DIR / "test"
ADMIN_KEY = "wk_admin_test_" + uuid.uuid4().hex


@dataclass(frozen=True)
class Servers:
    postgres: str  # URL of the server's maintenance database
    redis: str  # URL without a database number

    def database(self, name: str) -> str:
        return urls.with_database(self.postgres, name)  # one host or several


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    started: list[embedded.EmbeddedServer] = []
    postgres_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    if not postgres_url:
        server = embedded.start_postgres(TEST_DATA)
        started += [server] if server.started else []
        postgres_url = server.url("postgres")
    if not redis_url:
        redis_server = embedded.start_redis(TEST_DATA)
        started += [redis_server] if redis_server.started else []
        redis_url = redis_server.url(0)
    try:
        yield Servers(
            postgres_url, redis_url.rsplit("/", 1)[0] if redis_url.count("/") > 2 else redis_url
        )
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="session")
def database(servers: Servers) -> Iterator[str]:
    """A fresh, migrated, seeded database for this run; the process environment points at it."""
    from alembic import command
    from alembic.config import Config

    url = servers.database(f"wallet_test_{uuid.uuid4().hex[:12]}")
    embedded.ensure_database(url)
    os.environ.update(
        DATABASE_URL=url,
        REDIS_URL=f"{servers.redis}/1",
        WALLET_ADMIN_KEY=ADMIN_KEY,
        WALLET_PARTITIONS="8",
    )
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    _forget_process_state()
    config = Config(str(Path(__file__).resolve().parents[1] / "alembic.ini"))
    config.attributes["database_url"] = url
    command.upgrade(config, "head")
    from db.engine import connect
    from db.seed import seed

    with connect() as conn:
        seed(conn, 8)
    try:
        yield url
    finally:
        _forget_process_state()
        embedded.drop_database(url)


def _forget_process_state() -> None:
    """Engines, caches and clients built from an earlier environment."""
    import resources

    resources.reset()
