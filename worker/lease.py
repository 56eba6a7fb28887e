"""A partition's lease: the one drain chain of a partition, and the hand-off protocol.

A drain chain of partition p holds two things while it runs, and lets them go in an
order that never loses a ring:

- the doorbell flag in Redis (`wallet:doorbell:p`, worker.doorbell): while it is set,
  a ring enqueues nothing and only pushes the bell, because the holder will see the
  rung command;
- the chain lock in PostgreSQL (db.lease.ChainLock, a session advisory lock): a second
  chain (a forced ring, a redelivered message, another host) exits at once.

Every batch is still written under the transaction lock (db.lease.DrainLease), so even
a chain that wrongly believed it held the lease could not apply a batch twice: the
lease keeps chains from piling up, the DrainLease is the fence.

The states and moves (`PartitionLease`):

    free --acquire--> held --rung--> held (a ring came during the batch: gather, drain)
    held --linger--> held (a ring came: drain again) | held (none)
    held --hand_off--> free (the flag kept for the next chain, which is enqueued)
    held --let_go(last_look)--> free, or held again if the last look found work and
                                 no ring took the flag first
    any  --abandon--> free (the chain failed: the flag goes, rings enqueue again)

A ring is never lost: it either finds the flag free (and enqueues a chain), or finds
it set, and then the holder either takes the bell while lingering, or its `let_go`
looks once more *after* deleting the flag (the ring's SET NX failed before that).
A killed worker leaves the flag until its TTL; its message is redelivered (acks late,
reject on worker lost), and the new chain inherits the flag.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from types import TracebackType

import redis

from db.lease import ChainLock
from worker import doorbell

# Longer than a chain holds its partition between refreshes (worker.tasks' budget).
FLAG_TTL_SECONDS = doorbell.FLAG_TTL_SECONDS


class PartitionLease:
    """The lease of one partition for one drain chain (use it as a context manager:
    a chain that fails abandons it, and its connection is closed either way)."""

    def __init__(self, partition: int, between: Callable[[str], None] | None = None) -> None:
        self.partition = partition
        self._chain = ChainLock(partition)
        # Called after each step of a move, with the step's name: the seam where a test
        # interleaves other chains and rings (tests/integration/test_partition_lease.py).
        self._between = between or (lambda step: None)

    @property
    def held(self) -> bool:
        return self._chain.held

    def acquire(self) -> bool:
        """Take the chain lock; False if another chain holds it (and with it the flag,
        so it sees every command rung for)."""
        return self._chain.held or self._chain.acquire()

    def rung(self) -> bool:
        """Whether a ring is already waiting (it came while the last batch ran), without
        waiting for one; it is taken."""
        try:
            return doorbell.redis_client().lpop(doorbell.bell(self.partition)) is not None
        except redis.RedisError:
            return False

    def linger(self, seconds: float) -> bool:
        """With nothing left to drain, wait briefly for a ring; True if one came."""
        try:
            return (
                doorbell.redis_client().blpop([doorbell.bell(self.partition)], seconds) is not None
            )
        except redis.RedisError:
            return False

    def hand_off(self) -> None:
        """Give the worker thread back with work left: the flag stays set (refreshed, so
        it cannot expire before the next chain runs), the chain lock goes, then the next
        chain is enqueued. In that order: the next chain must be able to take the lock."""
        self._refresh_flag()
        self._between("flag refreshed")
        self._chain.release()
        self._between("chain lock released")
        doorbell.ring(self.partition, force=True)

    def let_go(self, last_look: Callable[[], bool]) -> bool:
        """Let go of an idle partition: the chain lock first (from the moment a ring can
        enqueue a new chain, that chain must be able to run), then the flag, then
        `last_look()`, one more batch. If it found work, take both back and return True
        (drain on); False when the lease is gone: free, or a ring's new chain has it."""
        self._chain.release()
        self._between("chain lock released")
        self._delete_flag()
        self._between("flag deleted")
        if not last_look():
            return False
        self._between("work found")
        if not self._claim_flag():
            return False
        self._between("flag claimed")
        return self._chain.acquire()

    def abandon(self) -> None:
        """A failed chain: never leave the flag behind, or rings would only push bells.
        The chain lock goes first (closing the session frees it even when the database
        cannot be asked), so the chain a ring then enqueues can take it."""
        self._chain.close()
        self._between("chain lock released")
        self._delete_flag()

    def close(self) -> None:
        self._chain.close()

    def __enter__(self) -> PartitionLease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is not None:
                self.abandon()
        finally:
            self.close()

    def _refresh_flag(self) -> None:
        with contextlib.suppress(redis.RedisError):
            doorbell.redis_client().set(doorbell.flag(self.partition), "1", ex=FLAG_TTL_SECONDS)

    def _claim_flag(self) -> bool:
        """Take the flag back; False if a ring took it first (its chain is on its way)."""
        try:
            flag = doorbell.flag(self.partition)
            return bool(doorbell.redis_client().set(flag, "1", nx=True, ex=FLAG_TTL_SECONDS))
        except redis.RedisError:
            return True  # keep draining: the commands are in PostgreSQL either way

    def _delete_flag(self) -> None:
        doorbell.release_flag(self.partition)
