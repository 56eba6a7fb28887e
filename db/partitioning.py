"""The partition count, held by PostgreSQL, and re-partitioning a live system.

A wallet's commands must all be in one partition for the drain's ordering rule to
hold (worker.drain: it probes other partitions only for transfers). So the count is
changed in one transaction that

1. takes the intake lock exclusively: every intake statement holds it shared
   (db.intake.INSERT) and reads the count in that same statement, so no command is
   stored with the old count after the switch, and none in flight is missed by it;
2. takes every partition's drain lock (the lease, db.lease.DrainLease), in ascending
   order: no batch read under the old layout is still being applied;
3. moves every pending command, and every active hold (its expiry and its captures go
   with its wallet), to `partition_of(user_id, N, ledger)`: each wallet's commands are
   together again, still in seq order;
4. stores N.

Nothing else reads the count for correctness: the sweeper reads it in its own query,
the rest (which partitions to ring when the database cannot be asked, which to drain on
start) caches it for a second.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import Connection, text

import resources
import settings
from db.engine import autocommit, get_engine
from ledger import partition_of

# pg_advisory_xact_lock[_shared](INTAKE_LOCK_NAMESPACE, 0): intake statements share it,
# a repartition takes it alone.
INTAKE_LOCK_NAMESPACE = 0x57414E
CACHE_SECONDS = 1.0
# The partition column is a smallint.
MAX_COUNT = 32767


def stored(conn: Connection) -> int | None:
    """The count the database holds, None before the seed wrote one."""
    value = conn.execute(text("SELECT partitions FROM wallet_partitioning")).scalar()
    return None if value is None else int(value)


def ensure(conn: Connection, partitions: int) -> int:
    """Store `partitions` unless a count is stored already; the count in force."""
    conn.execute(
        text(
            "INSERT INTO wallet_partitioning (partitions) VALUES (:n) "
            "ON CONFLICT (singleton) DO NOTHING"
        ),
        {"n": partitions},
    )
    found = stored(conn)
    assert found is not None
    return found


class _Cache:
    """The count this process last read (a resource of the process: resources.py)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value: int | None = None
        self.read_at = 0.0


_CACHE = resources.Resource("db.partitioning.count", _Cache)


def current() -> int:
    """The count in force, read at most once a second; the last one known (or
    WALLET_PARTITIONS) when the database cannot be asked."""
    cache = _CACHE.get()
    with cache.lock:
        if cache.value is not None and time.monotonic() - cache.read_at < CACHE_SECONDS:
            return cache.value
    try:
        with autocommit() as conn:
            value = stored(conn)
    except Exception:
        value = None
        if cache.value is not None:
            return cache.value
    value = value if value is not None else settings.load().partitions
    with cache.lock:
        cache.value, cache.read_at = value, time.monotonic()
    return value


def last_known() -> int:
    """The count last read by this process (WALLET_PARTITIONS before any), without
    asking the database: for when it has just failed."""
    cache = _CACHE.get()
    with cache.lock:
        return cache.value if cache.value is not None else settings.load().partitions


def forget() -> None:
    """Drop the cached count (tests, and the repartition command's own process)."""
    cache = _CACHE.get()
    with cache.lock:
        cache.value, cache.read_at = None, 0.0


@dataclass(frozen=True)
class Repartitioned:
    old: int
    new: int
    # Rows looked at (pending commands and active holds) and rows that changed partition.
    pending: int
    moved: int
    seconds: float


def repartition(new: int) -> Repartitioned:
    """Change the partition count to `new` on a live system (see the module docstring).

    Intake waits while this runs (its statements queue on the intake lock), drains wait
    for their lease; both carry on with the new layout once it commits. The caller
    rings every partition afterwards, so that moved commands are drained at once.
    """
    limit = settings.load().max_partitions
    if not 1 <= new <= min(limit, MAX_COUNT):
        raise ValueError(
            f"the partition count must be between 1 and {min(limit, MAX_COUNT)} "
            "(WALLET_MAX_PARTITIONS: the queues the workers consume)"
        )
    from db.lease import DrainLease

    started = time.monotonic()
    with get_engine().begin() as conn:
        # The intake's statements may queue behind this for as long as it runs.
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        conn.execute(text("SELECT pg_advisory_xact_lock(:ns, 0)"), {"ns": INTAKE_LOCK_NAMESPACE})
        old = stored(conn) or settings.load().partitions
        # Every partition a row may be in: the old layout, the new, and any stray one.
        highest = conn.execute(
            text(
                "SELECT max(partition) FROM transactions "
                "WHERE status = 'pending' AND partition IS NOT NULL"
            )
        ).scalar()
        span = max(old, new, (highest or 0) + 1)
        DrainLease.take_all(conn, span)
        rows = conn.execute(
            text(
                "SELECT id, ledger_id, user_id, partition FROM transactions "
                "WHERE status = 'pending' AND partition IS NOT NULL "
                "UNION SELECT id, ledger_id, user_id, partition FROM transactions "
                "WHERE hold_status = 'active'"
            )
        ).all()
        moves = [
            (row.id, target)
            for row in rows
            if (target := partition_of(row.user_id, new, row.ledger_id)) != row.partition
        ]
        if moves:
            conn.execute(
                text(
                    "UPDATE transactions t SET partition = m.partition "
                    "FROM unnest(CAST(:ids AS uuid[]), CAST(:parts AS smallint[])) "
                    "AS m(id, partition) WHERE t.id = m.id"
                ),
                {"ids": [m[0] for m in moves], "parts": [m[1] for m in moves]},
            )
        conn.execute(
            text(
                "INSERT INTO wallet_partitioning (partitions) VALUES (:n) "
                "ON CONFLICT (singleton) DO UPDATE SET partitions = :n, changed_at = now()"
            ),
            {"n": new},
        )
    forget()
    return Repartitioned(old, new, len(rows), len(moves), time.monotonic() - started)
