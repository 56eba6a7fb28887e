"""PostgreSQL's part of a partition's lease: who may drain a partition, and when.

Two advisory locks per partition, both granted by PostgreSQL, never by Redis:

- `DrainLease`, a transaction lock taken by every transaction that applies the
  partition's commands: the fence. Two drains of one partition never overlap.
- `ChainLock`, a session lock held by the one drain chain of the partition (worker.lease
  holds it with the doorbell flag): a second chain, started by a forced ring, exits at
  once instead of queueing behind the lease.

A session that dies (its host lost, its connection cut, the server's session timeouts)
loses both at once.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from db.engine import autocommit_connection

# pg_advisory_xact_lock(namespace, partition): the drain lease (DrainLease below).
DRAIN_LOCK_NAMESPACE = 0x57414C
# pg_try_advisory_lock(namespace, partition): at most one drain chain (ChainLock).
CHAIN_LOCK_NAMESPACE = 0x57414D


class ChainLock:
    """At most one drain chain per partition, across every worker: a session-level
    advisory lock, held on a connection of its own for as long as the chain runs.

    A drain that cannot take it exits at once: the chain that holds it holds the
    partition's doorbell flag too, and sees every command rung for. (The transaction
    lock below still serialises batches; this only keeps extra chains, which forced
    rings would start, from piling up behind it.)
    """

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.held = False
        self._conn: Connection | None = None

    def acquire(self) -> bool:
        if self._conn is None:
            self._conn = autocommit_connection()
        self.held = bool(
            self._conn.execute(
                text("SELECT pg_try_advisory_lock(:ns, :p)"),
                {"ns": CHAIN_LOCK_NAMESPACE, "p": self.partition},
            ).scalar()
        )
        return self.held

    def release(self) -> None:
        if self.held and self._conn is not None:
            self._conn.execute(
                text("SELECT pg_advisory_unlock(:ns, :p)"),
                {"ns": CHAIN_LOCK_NAMESPACE, "p": self.partition},
            )
            self.held = False

    def close(self) -> None:
        if self._conn is None:
            return
        try:
            self.release()
            self._conn.close()
        except Exception:
            # Unsure whether the lock is gone: a closed socket surely ends the session.
            self._conn.invalidate()
        self._conn = None


class DrainLease:
    """The right to apply a partition's commands, granted by PostgreSQL, never by Redis.

    It is a transaction-level advisory lock, taken in the transaction that reads the
    batch (in the same round trip, see pending_commands) and that writes it. That one
    transaction is the fence: its fencing token is the transaction itself.

    - Two drains of one partition (two consumers of `partition.p`, on one host or two)
      never overlap: the second waits for the first to commit or abort, and then reads
      the partition afresh, so it neither repeats nor reorders what the first applied.
    - A worker cut off from Redis but still reaching PostgreSQL cannot apply a stale
      batch: it has no batch other than the one it read under the lease it writes
      under. A doorbell, late, duplicated or delivered to a second host, only starts a
      drain; it carries no work.
    - A worker whose PostgreSQL session dies mid-batch (its host lost, its connection
      cut, the server's keepalive or idle_in_transaction_session_timeout ending it,
      pg_terminate_backend) loses the lease and its transaction together: nothing it
      decided is written, and the next holder reads the commands as still pending.
    - A worker that stalls while holding it (stopped, swapping) holds up its partition
      only, until its session is ended (db.engine's session timeouts); there is no
      wall-clock expiry that could let a second drain in while the first may still
      commit.

    Besides the drains, only the poison-command path (worker.drain._reject_poison) and a
    repartition (db.partitioning, which takes every lease at once) write under it.
    """

    @staticmethod
    def take(conn: Connection, partition: int) -> None:
        """Wait for the partition's lease; held until this transaction ends."""
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:ns, :p)"),
            {"ns": DRAIN_LOCK_NAMESPACE, "p": partition},
        )

    @staticmethod
    def take_all(conn: Connection, partitions: int) -> None:
        """Wait for the leases of partitions 0 .. partitions - 1, in ascending order (a
        drain holds one lease only, so no order of waits can form a cycle)."""
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:ns, p) FROM generate_series(0, :n - 1) AS p"),
            {"ns": DRAIN_LOCK_NAMESPACE, "n": partitions},
        )
