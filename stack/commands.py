"""The command line of every process of the service, defined once.

`python -m stack` runs these; docker-compose.yml and the Dockerfile spell the same
commands out, and tests/unit/test_deploy_files.py checks that they agree. Executables
are bare names here; `resolve` finds them next to the running interpreter.

This module uses the standard library only: the Docker image, which has no dev
dependencies, runs `python -m stack workers` and `python -m stack migrate`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CELERY_APP = "worker.app"
DEFAULT_WORKER_PROCESSES = 2
# Every Celery worker: send task events (Flower shows them), and skip gossip and mingle,
# which cost a round of broadcast messages per worker and per restart for nothing here:
# the database, not Celery, decides who drains a partition (db.lease.DrainLease).
_WORKER_FLAGS = ["-E", "-l", "INFO", "--without-gossip", "--without-mingle"]
# How often Flower saves its task history (milliseconds), besides on exit.
FLOWER_SAVE_EVERY_MS = 60_000


@dataclass(frozen=True)
class Command:
    """A named process of the stack and its command line."""

    name: str
    argv: list[str]


def api() -> Command:
    """The HTTP API under gunicorn (gunicorn.conf.py reads PORT)."""
    return Command("api", ["gunicorn", "-c", "gunicorn.conf.py", "api:create_app()"])


def partition_workers(
    partitions: int, processes: int | None = None, host: str = "%h"
) -> list[Command]:
    """One host's partition workers: a few processes, a thread per partition queue.

    `partitions` is the number of queues to consume: the stack passes
    WALLET_MAX_PARTITIONS, so that a repartition up to it finds every queue consumed
    without a restart. Worker i consumes `partition.{p}` for every p with
    p % processes == i, so each partition has one consuming process on this host;
    other hosts may consume the same queues, and a drain holds the partition's lease
    in PostgreSQL (db.lease.DrainLease), so its commands apply in order, once. A drain
    spends most of its time waiting on PostgreSQL, so threads overlap well and one
    process per core is enough (the default: 2); more processes than partitions would
    leave some without a queue, so the count is capped. `host` is the node names'
    host part (Celery's `%h`, or HOSTNAME): node names must differ across hosts.
    """
    if partitions < 1:
        raise ValueError("WALLET_PARTITIONS must be at least 1")
    count = min(processes or DEFAULT_WORKER_PROCESSES, partitions)
    if count < 1:
        raise ValueError("WALLET_WORKER_PROCESSES must be at least 1")
    workers = []
    for i in range(count):
        queues = [f"partition.{p}" for p in range(i, partitions, count)]
        pool = ["-P", "threads", "-c", str(len(queues))]
        workers.append(
            Command(
                f"partitions-{i}",
                _celery_worker(f"partitions-{i}", ",".join(queues), pool, host),
            )
        )
    return workers


def callbacks_worker(host: str = "%h") -> Command:
    """Callback deliveries and beat's housekeeping (the `maintenance` queue): I/O-bound,
    unordered, and never on a partition's path, so one process with 16 threads."""
    return Command(
        "callbacks",
        _celery_worker("callbacks", "callbacks,maintenance", ["-P", "threads", "-c", "16"], host),
    )


def beat(schedule: Path | str) -> Command:
    """The single periodic scheduler (the sweeper, hold expiry, the reconciliation)."""
    return Command(
        "beat", ["celery", "-A", CELERY_APP, "-q", "beat", "-l", "INFO", "-s", str(schedule)]
    )


def flower(port: int, data_dir: Path | str) -> Command:
    """Flower on `port`. Its basic auth comes from FLOWER_BASIC_AUTH in the environment,
    which Flower reads itself: a password on the command line is visible in `ps`.

    It keeps its task history in `<data dir>/flower` (saved every minute and on exit),
    so a restart forgets nothing; it logs JSON lines (worker.app), so tornado's own
    logging is off. It must run without PROMETHEUS_MULTIPROC_DIR (see
    `without_shared_metrics`).
    """
    return Command(
        "flower",
        [
            "celery",
            "-A",
            CELERY_APP,
            "flower",
            f"--port={port}",
            "--persistent=True",
            f"--db={Path(data_dir) / 'flower'}",
            f"--state_save_interval={FLOWER_SAVE_EVERY_MS}",
            "--logging=none",
        ],
    )


def without_shared_metrics(env: Mapping[str, str]) -> dict[str, str]:
    """Flower's environment: the service's, minus the shared metrics folder. Flower is a
    prometheus-client process too; in that folder its flower_* series would be summed
    into the service's /metrics, and stay there, stale, after each restart."""
    return {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}


def migrations() -> list[Command]:
    """The schema (alembic.ini at the repository root reads DATABASE_URL), then the seed."""
    return [
        Command("migrate", ["python", "-m", "alembic", "upgrade", "head"]),
        Command("seed", ["python", "-m", "db.seed"]),
    ]


def resolve(argv: list[str]) -> list[str]:
    """`argv` with its program taken from this interpreter's own bin folder.

    So that `.venv/bin/python -m stack run` starts `.venv/bin/celery`, whatever PATH is.
    """
    program, *rest = argv
    if program == "python":
        return [sys.executable, *rest]
    candidate = Path(sys.executable).parent / program
    return [str(candidate) if candidate.exists() else program, *rest]


def _celery_worker(name: str, queues: str, pool: list[str], host: str = "%h") -> list[str]:
    # -q: no banner on stdout; the worker's log lines are JSON (worker.app).
    command = ["celery", "-A", CELERY_APP, "-q", "worker", *pool]
    return [*command, "-Q", queues, "-n", f"{name}@{host}", *_WORKER_FLAGS]
