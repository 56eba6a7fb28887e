"""`make run` for real: embedded servers in a fresh data folder, the banner, the stop.

One stack is started for the whole module (the embedded servers and the children take
a while to come up): the banner test reads it while it runs, the stop test then stops it
the way the README says, with SIGTERM to the process group of `make` and its children.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg2
import pytest
import redis

from stack import embedded, launch
from stack.secrets import SECRETS_FILE

ROOT = Path(__file__).resolve().parents[2]
BANNER_END = re.compile(r"^\s*Redis\s+\S+\s*$", re.MULTILINE)


@dataclass
class MakeRun:
    """`make run` in a session of its own (make and python share its process group)."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def banner(self) -> dict[str, str]:
        """The banner's rows, label to value."""
        text = self.output()
        start = text.index("The wallet service is running")
        rows = re.findall(r"^ {2}(\S+(?: \S+)?) +(.+)$", text[start:], re.MULTILINE)
        return {label: value.strip() for label, value in rows}


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeRun]:
    data_dir = tmp_path_factory.mktemp("make-run")
    # The Makefile's `run` depends on `install` (a virtualenv in .venv, pip install):
    # point PY at this interpreter and INSTALLED at a fresh stamp, so the recipe that
    # runs is exactly `$(PY) -m stack run`, and nothing is installed.
    stamp = data_dir / "installed"
    stamp.touch()
    port, flower_port = launch.any_free_port(), launch.any_free_port()
    env = {
        **os.environ,
        "WALLET_DATA_DIR": str(data_dir),
        "PORT": str(port),
        "FLOWER_PORT": str(flower_port),
        "WALLET_PARTITIONS": "2",
        "WALLET_WORKER_PROCESSES": "1",
        "WEB_CONCURRENCY": "1",
        "NO_COLOR": "1",
    }
    # Unset, so that the stack starts its embedded servers and generates its secrets
    # (and a `make test` around us does not leak its job server into this make).
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "WALLET_ADMIN_KEY",
        "FLOWER_BASIC_AUTH",
        "PROMETHEUS_MULTIPROC_DIR",
        "MAKEFLAGS",
        "MAKELEVEL",
        "MFLAGS",
    ):
        env.pop(name, None)
    log = data_dir / "make-run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run", f"PY={sys.executable}", f"INSTALLED={stamp}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = MakeRun(process, data_dir, port, log)
    try:
        launch.wait_ready(
            process,
            lambda: BANNER_END.search(running.output()) is not None and _healthy(port),
            log,
            timeout=180,
        )
        yield running
    finally:
        launch.stop(process, timeout=60)
        # The stack stops the servers it started; after a SIGKILL it could not have.
        for server in (embedded.running_postgres(data_dir), embedded.running_redis(data_dir)):
            if server is not None:
                server.stop()


def test_the_banner_shows_what_really_runs(make_run: MakeRun) -> None:
    banner = make_run.banner()
    saved = dict(
        line.split("=", 1)
        for line in (make_run.data_dir / SECRETS_FILE).read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    flower = re.search(r"\(user (\S*), password (\S*)\)", banner["Flower"])
    postgres = embedded.running_postgres(make_run.data_dir)
    redis_server = embedded.running_redis(make_run.data_dir)
    assert postgres is not None and redis_server is not None

    assert banner["Admin key"] == saved["WALLET_ADMIN_KEY"]
    assert flower is not None
    assert ":".join(flower.groups()) == saved["FLOWER_BASIC_AUTH"]
    assert banner["API"] == f"http://127.0.0.1:{make_run.port}"
    assert banner["Data"] == str(make_run.data_dir.resolve())
    # The URLs printed lead to the servers that run (embedded: no password to hide).
    assert f":{postgres.port}/" in banner["PostgreSQL"]
    assert f":{redis_server.port}/" in banner["Redis"]
    with closing(psycopg2.connect(banner["PostgreSQL"])) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_database(), inet_server_port()")
        assert cur.fetchone() == ("wallet", postgres.port)
    with redis.Redis.from_url(banner["Redis"]) as client:
        assert client.ping()


def test_sigterm_to_the_process_group_stops_everything_cleanly(make_run: MakeRun) -> None:
    """The README's stop, `kill -TERM -- -<pgid>`, reaches make and python at once, and
    make passes its SIGTERM on to python: that must still be one orderly stop."""
    make = psutil.Process(make_run.process.pid)
    children = make.children(recursive=True)
    python = next(p for p in make.children() if p.cmdline()[-3:] == ["-m", "stack", "run"])
    mark = len(make_run.output())

    os.killpg(make_run.process.pid, signal.SIGTERM)
    # make's own copy follows within a fraction of a millisecond, and is merged with ours
    # or not depending on when python's handler runs. Repeat it once ours has been seen,
    # so the test does not depend on that race.
    _wait_for(make_run, "stopping (SIGTERM", mark)
    python.send_signal(signal.SIGTERM)

    _, alive = psutil.wait_procs(children, timeout=30)
    assert alive == [], make_run.output()[mark:]
    make_run.process.wait(timeout=10)
    after = make_run.output()[mark:]
    assert "killing what is left (SIGKILL)" not in after, after
    assert "(killed by SIGKILL)" not in after, after
    assert "all processes stopped" in after, after
    # And the embedded servers this `make run` started are stopped with it.
    assert embedded.running_postgres(make_run.data_dir) is None
    assert embedded.running_redis(make_run.data_dir) is None


def _wait_for(make_run: MakeRun, text: str, after: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in make_run.output()[after:]:
        assert time.monotonic() < deadline, f"no {text!r} in:\n{make_run.output()[after:]}"
        time.sleep(0.005)


def _healthy(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
        return bool(response.status == 200)
