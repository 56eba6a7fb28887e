"""The embedded PostgreSQL and Redis, for real, in a temporary data folder (a few seconds)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
import redis

from stack.embedded import (
    drop_database,
    ensure_database,
    running_postgres,
    running_redis,
    start_postgres,
    start_redis,
)
from stack.ports import accepts_connections

pytestmark = pytest.mark.embedded
ROOT = Path(__file__).resolve().parents[2]


def test_servers_start_serve_are_reused_and_stop(tmp_path: Path) -> None:
    pg, rd = start_postgres(tmp_path), start_redis(tmp_path)
    try:
        assert pg.started and rd.started
        assert pg.url("x") == f"postgresql://postgres@127.0.0.1:{pg.port}/x"

        url = pg.url("stack_test")
        assert ensure_database(url) is True
        assert ensure_database(url) is False
        assert _show(url, "fsync", "synchronous_commit", "max_connections", "shared_buffers") == [
            "on",
            "on",
            "300",
            "256MB",
        ]
        assert _show(url, "listen_addresses", "unix_socket_directories") == ["127.0.0.1", ""]
        drop_database(url)
        assert ensure_database(url) is True  # it was really gone

        client = redis.Redis.from_url(rd.url(3))
        client.set("doorbell", "ring")
        assert client.get("doorbell") == b"ring"
        client.close()

        # A second start from the same folder finds the running servers.
        for again, first in ((start_postgres(tmp_path), pg), (start_redis(tmp_path), rd)):
            assert not again.started
            assert (again.pid, again.port) == (first.pid, first.port)
    finally:
        pg.stop()
        rd.stop()

    assert running_postgres(tmp_path) is None and running_redis(tmp_path) is None
    assert not accepts_connections(pg.port) and not accepts_connections(rd.port)


def test_a_second_folder_gets_other_ports(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    servers = [start_postgres(first), start_redis(first)]
    try:
        servers += [start_postgres(second), start_redis(second)]
        assert servers[2].port != servers[0].port and servers[3].port != servers[1].port
        assert all(accepts_connections(server.port) for server in servers)
    finally:
        for server in servers:
            server.stop()


def test_two_processes_starting_at_once_share_one_server(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from stack.embedded import start_postgres;"
        "s = start_postgres(Path(sys.argv[1])); print(s.started, s.pid)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, env=env, text=True
        )
        for _ in range(2)
    ]
    try:
        answers = sorted(proc.communicate(timeout=60)[0].split() for proc in procs)
        assert [started for started, _ in answers] == ["False", "True"]
        assert answers[0][1] == answers[1][1]  # the same postmaster
    finally:
        server = running_postgres(tmp_path)
        if server is not None:
            server.stop()


def test_leftovers_of_a_crash_do_not_block_the_next_start(tmp_path: Path) -> None:
    pg, rd = start_postgres(tmp_path), start_redis(tmp_path)
    pg.stop()
    os.kill(rd.pid, signal.SIGKILL)  # leaves its pid and port behind
    # A postmaster.pid naming a live process that is not our server (as after a reboot).
    (pg.home / "postmaster.pid").write_text(
        f"{os.getpid()}\n{pg.home}\n0\n{pg.port}\n\n\n\nready\n"
    )

    again_pg, again_rd = start_postgres(tmp_path), start_redis(tmp_path)
    try:
        assert again_pg.started and again_rd.started
        assert accepts_connections(again_pg.port) and accepts_connections(again_rd.port)
    finally:
        again_pg.stop()
        again_rd.stop()


def _show(url: str, *names: str) -> list[str]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        values = []
        for name in names:
            cur.execute(f"SHOW {name}")
            values.append(cur.fetchone()[0])
    conn.close()
    return values
