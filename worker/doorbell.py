"""Ring a partition's doorbell: make sure a drain of it runs after this call.

The message carries nothing but the partition; the commands are in PostgreSQL. One
flag per partition in Redis means "a drain of this partition is queued or running":

- `ring` sets the flag (SET NX) and enqueues a drain only if the flag was free;
  either way it pushes a bell (a one-slot list) that a running drain waits on;
- a drain keeps the flag while it works, and when it runs out of work it lingers on
  the bell for a moment, then lets go: it deletes the flag, applies one more batch,
  and takes the flag back only if that batch found work (worker.lease, which owns the
  holder's side of the protocol).

So a command committed before a ring is seen: either the ring enqueued a drain, or the
flag was held, and then the holder's final batch after its release (which happens
after the ring's failed SET NX) reads it. Under load a partition's drain runs on and
on and rings cost one Redis round trip, not a task each.

Two things can still swallow a ring: a message lost after its flag was set (a flushed
Redis, a killed worker), and a ring that finds the flag of a ring whose enqueue then
failed. Either way the command stays pending in PostgreSQL and the sweeper rings its
partition again within a few seconds: nothing is lost, only late.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis
from kombu.exceptions import KombuError

import resources
from worker.connections import connect_redis
from worker.metrics import DOORBELL_FAILURES
from worker.routing import queue_name

log = logging.getLogger(__name__)

# Longer than a drain holds its partition between refreshes (worker.lease).
FLAG_TTL_SECONDS = 30
# Short: a stalled Redis must not hold an accepted command's 202 for long. A drain's
# linger (worker.tasks) waits less than this.
SOCKET_TIMEOUT_SECONDS = 2.0


def flag(partition: int) -> str:
    return f"wallet:doorbell:{partition}"


def bell(partition: int) -> str:
    return f"wallet:bell:{partition}"


def swept(partition: int) -> str:
    """Set for a sweep period once the sweeper has rung the partition."""
    return f"wallet:swept:{partition}"


@dataclass(frozen=True)
class _Connection:
    client: redis.Redis
    ring_script: Any  # redis-py's Script: EVALSHA, loaded again if Redis was flushed


def _connect() -> _Connection:
    # Short timeouts: a stalled Redis must not hold an accepted command's 202 for long.
    client = connect_redis(socket_timeout=SOCKET_TIMEOUT_SECONDS, health_check_interval=30)
    return _Connection(client, client.register_script(RING))


def _close(connection: _Connection, after_fork: bool) -> None:
    if not after_fork:  # after a fork redis-py opens the child's own connections
        connection.client.close()


CONNECTION = resources.Resource("worker.doorbell.redis", _connect, _close)


def redis_client() -> redis.Redis:
    """This process's Redis client for doorbells (a resource of the process)."""
    return CONNECTION.get().client


def ring(partition: int, force: bool = False) -> bool:
    """Make sure a drain of the partition runs after this call."""
    return ring_many([partition], force=force)


def ring_many(partitions: Iterable[int], force: bool = False) -> bool:
    """Ring several partitions with one Redis round trip; `force` enqueues regardless.

    Returns False when the broker could not be reached: the commands stay pending in
    PostgreSQL and the sweeper rings again once Redis is back. Never raises.
    """
    partitions = sorted(set(partitions))
    if not partitions:
        return True
    flagged: list[int] = []
    try:
        connection = CONNECTION.get()
        keys = [key for partition in partitions for key in (flag(partition), bell(partition))]
        answers = connection.ring_script(
            keys=keys, args=[FLAG_TTL_SECONDS], client=connection.client
        )
        flagged = [p for p, was_set in zip(partitions, answers, strict=True) if was_set]
        for partition in partitions if force else flagged:
            enqueue(partition)
        return True
    except (redis.RedisError, KombuError, OSError) as error:
        log.warning("could not ring partitions %s: %r", partitions, error)
        DOORBELL_FAILURES.inc()
        for partition in flagged:
            release_flag(partition)
        return False


def enqueue(partition: int) -> None:
    """Enqueue a drain chain of the partition (a message carrying nothing else)."""
    from worker.tasks import apply_partition  # the task module imports this one

    apply_partition.apply_async(args=[partition], queue=queue_name(partition), retry=False)


def ring_overdue(partitions: Iterable[int], period_seconds: float) -> list[int]:
    """The sweeper's ring: forced, but at most once per partition per period (a
    partition with a long backlog is already draining, and a ring a second would only
    pile up messages). Returns the partitions rung."""
    partitions = list(partitions)
    try:
        pipe = redis_client().pipeline(transaction=False)
        for partition in partitions:
            pipe.set(swept(partition), "1", nx=True, ex=max(1, int(period_seconds)))
        due = [p for p, fresh in zip(partitions, pipe.execute(), strict=True) if fresh]
    except redis.RedisError:
        due = partitions
    ring_many(due, force=True)
    return due


def release_flag(partition: int) -> None:
    """From now on a ring enqueues a new drain chain of this partition."""
    try:
        redis_client().delete(flag(partition))
    except redis.RedisError as error:
        log.warning("could not release the doorbell of partition %s: %r", partition, error)


# For each (flag, bell) pair: take the flag if free, and ring the bell (a one-slot list)
# either way. One command, one reply: the intake pays one small round trip per ring.
RING = """
local taken = {}
for i = 1, #KEYS, 2 do
    taken[#taken + 1] = redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) and 1 or 0
    redis.call('LPUSH', KEYS[i + 1], '1')
    redis.call('LTRIM', KEYS[i + 1], 0, 0)
end
return taken
"""
