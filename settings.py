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
    expiry_sweep_seconds: float = 1.0


@functools.cache
def load() -> Settings:
    """The settings, read from the environment once per process (a request must not pay
    for a dozen environment lookups). Tests that change the environment call
    `load.cache_clear()`."""
    sentinels = _addresses(os.environ.get("REDIS_SENTINELS", ""))
    if sentinels and not os.environ.get("REDIS_SENTINEL_MASTER"):
        raise ValueError("REDIS_SENTINELS is set: REDIS_SENTINEL_MASTER must name the master")
    partitions = int(os.environ.get("WALLET_PARTITIONS", "8"))
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
    )


def _addresses(value: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` as pairs; a port-less host means Sentinel's 26379."""
    pairs = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "26379")
        pairs.append((host.strip("[]"), int(port)))
    return tuple(pairs)
