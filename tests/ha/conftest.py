"""Fixtures for the HA tests: the processes a test starts (all stopped at its end, and
checked to be gone), a pg_auto_failover formation, a Redis Sentinel set, a plain Redis.
Each is function-scoped: a test kills a leader, so nothing is shared with the next."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ha import clusters

pytestmark = pytest.mark.ha


@pytest.fixture
def processes() -> Iterator[clusters.Processes]:
    """Everything this test starts; stopped (and checked gone) when it ends."""
    # Owned by the user PostgreSQL runs as, when it is one of the things started here.
    user = clusters.run_as()
    if user is not None and not clusters.user_exists(user):
        user = None  # no postgres user: PgAutoFailover.require_tools skips its tests
    root = clusters.owned_temp_dir("wallet-ha-", user)
    try:
        with clusters.processes_in(root) as started:
            yield started
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_formation(processes: clusters.Processes) -> clusters.PgAutoFailover:
    """A pg_auto_failover monitor and two nodes, node1 the primary, database `wallet`."""
    clusters.PgAutoFailover.require_tools()
    formation = clusters.PgAutoFailover(processes.logs, processes)
    try:
        formation.start("wallet")
    except Exception as error:
        raise AssertionError(f"{error}\n{formation.logs()}") from error
    return formation


@pytest.fixture
def sentinel_set(processes: clusters.Processes) -> clusters.RedisSentinelSet:
    """A Redis master, two replicas and three sentinels watching `wallet`."""
    clusters.RedisSentinelSet.require_tools()
    sentinels = clusters.RedisSentinelSet(processes.logs / "redis", processes)
    sentinels.root.mkdir()
    try:
        sentinels.start()
    except Exception as error:
        raise AssertionError(f"{error}\n{sentinels.logs()}") from error
    return sentinels


@pytest.fixture
def plain_redis(processes: clusters.Processes) -> clusters.RedisNode:
    """One redis-server (for tests whose subject is not Redis)."""
    return clusters.start_redis(
        processes, processes.logs / "redis", "redis", clusters.free_ports(1)[0]
    )


@pytest.fixture
def stack_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="wallet-ha-stack-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


_MEASURED: list[str] = []


@pytest.fixture
def measured() -> list[str]:
    """Lines for the end of the run: what a failover test measured."""
    return _MEASURED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _MEASURED:
        terminalreporter.section("HA measurements")
        for line in _MEASURED:
            terminalreporter.write_line(line)
