"""Configuration read from the environment, once, in one place.

Every process (API, workers, beat, seed, tests) reads the same variables, so the
defaults live here and nowhere else.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("WALLET_DATA_DIR", ROOT / ".data"))


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    # Redis through Sentinel (instead of redis_url when set): the sentinels' addresses
    # and the name of the master they watch.
    redis_sentinels: tuple[tuple[str, int], ...]
    redis_sentinel_master: str | None
    admin_key: str | None
    # The partition count a fresh database starts with; once stored (db.partitioning)
    # the database's count wins, and `python -m stack repartition N` changes it.
    partitions: int
    # The partition queues every partition worker consumes (partition.0 .. max - 1):
    # a repartition up to this needs no worker restart.
    max_partitions: int
    port: int
    flower_port: int
    flower_basic_auth: str | None
    # How many pending commands one drain transaction applies at most.
    drain_batch_size: int
    # A command pending for longer than this is re-rung by the sweeper.
    sweep_after_seconds: float
    # How often beat's expiry sweeper looks for due credits (worker.expiry).
    expiry_sweep_seconds: float
    # How long a drain rung while its batch ran lets commands gather before it reads
    # again (WALLET_DRAIN_GATHER_MS); an idle drain that is rung reads at once.
    drain_gather_seconds: float
    # How often beat runs the reconciliation (WALLET_RECONCILE_EVERY, seconds).
    reconcile_every_seconds: float
    # Each database pool's size (WALLET_DB_POOL_SIZE; None: the pool's own default) and
    # whether a checkout pings first (WALLET_DB_PRE_PING=1; off: see db.engine).
    db_pool_size: int | None
    db_pre_ping: bool
    # The API's group commit: committer threads per process, commands per statement.
    intake_committers: int
    intake_max_batch: int
    # Callbacks are retried for this long after the transaction became final, with
    # exponential backoff from the first delay up to the cap.
    callback_retry_for_seconds: float
    callback_backoff_first_seconds: float
    callback_backoff_cap_seconds: float
    # gunicorn: processes, threads per process, connections per process (the long
    # polls' Redis pool is sized by the last: each parked waiter holds one).
    web_concurrency: int
    gunicorn_threads: int
    gunicorn_worker_connections: int


# The partition count of a new database without WALLET_PARTITIONS: a partition per core,
# at least 2 and at most 8. Partitions are the drains' unit of parallelism; where the API,
# the workers and PostgreSQL share the cores, more of them than cores only split the
# same commands into smaller batches, each paying the same round trips (README,
# Performance: on 2 cores, 8 partitions cost about a fifth more CPU per command than 2).
MIN_DEFAULT_PARTITIONS, MAX_DEFAULT_PARTITIONS = 2, 8


def default_partitions() -> int:
    """The cores this process may run on (its CPU affinity), from 2 to 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or MIN_DEFAULT_PARTITIONS
    return max(MIN_DEFAULT_PARTITIONS, min(MAX_DEFAULT_PARTITIONS, cores))


@functools.cache
def load() -> Settings:
    """The settings, read from the environment once per process (a request must not pay
    for a dozen environment lookups). Tests that change the environment call
    `load.cache_clear()`."""
    sentinels = _addresses(os.environ.get("REDIS_SENTINELS", ""))
    if sentinels and not os.environ.get("REDIS_SENTINEL_MASTER"):
        raise ValueError("REDIS_SENTINELS is set: REDIS_SENTINEL_MASTER must name the master")
    # Unset or empty: one partition per core, 2 to 8 (default_partitions).
    partitions = int(os.environ.get("WALLET_PARTITIONS") or default_partitions())
    return Settings(
        database_url=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/wallet"),
        redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        redis_sentinels=sentinels,
        redis_sentinel_master=os.environ.get("REDIS_SENTINEL_MASTER") or None,
        admin_key=os.environ.get("WALLET_ADMIN_KEY") or None,
        partitions=partitions,
        max_partitions=max(partitions, int(os.environ.get("WALLET_MAX_PARTITIONS", "64"))),
        port=int(os.environ.get("PORT", "8000")),
        flower_port=int(os.environ.get("FLOWER_PORT", "5555")),
        flower_basic_auth=os.environ.get("FLOWER_BASIC_AUTH") or None,
        drain_batch_size=int(os.environ.get("WALLET_DRAIN_BATCH", "500")),
        sweep_after_seconds=float(os.environ.get("WALLET_SWEEP_AFTER", "3")),
        expiry_sweep_seconds=float(os.environ.get("WALLET_EXPIRY_SWEEP_EVERY", "1")),
        drain_gather_seconds=float(os.environ.get("WALLET_DRAIN_GATHER_MS", "3")) / 1000,
        reconcile_every_seconds=float(os.environ.get("WALLET_RECONCILE_EVERY", "300")),
        db_pool_size=int(os.environ["WALLET_DB_POOL_SIZE"])
        if os.environ.get("WALLET_DB_POOL_SIZE")
        else None,
        db_pre_ping=os.environ.get("WALLET_DB_PRE_PING", "0") == "1",
        intake_committers=int(os.environ.get("WALLET_INTAKE_COMMITTERS", "2")),
        intake_max_batch=int(os.environ.get("WALLET_INTAKE_MAX_BATCH", "200")),
        callback_retry_for_seconds=float(
            os.environ.get("WALLET_CALLBACK_RETRY_FOR_SECONDS", "3600")
        ),
        callback_backoff_first_seconds=float(
            os.environ.get("WALLET_CALLBACK_BACKOFF_FIRST_SECONDS", "1")
        ),
        callback_backoff_cap_seconds=float(
            os.environ.get("WALLET_CALLBACK_BACKOFF_CAP_SECONDS", "600")
        ),
        web_concurrency=int(os.environ.get("WEB_CONCURRENCY", "2")),
        gunicorn_threads=int(os.environ.get("GUNICORN_THREADS", "256")),
        gunicorn_worker_connections=int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "1000")),
    )


def _addresses(value: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` as pairs; a port-less host means Sentinel's 26379."""
    pairs = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "26379")
        pairs.append((host.strip("[]"), int(port)))
    return tuple(pairs)
