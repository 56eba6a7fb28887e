"""Ring a partition's doorbell: make sure a drain of it starts after this call.

The message carries nothing but the partition; the commands are in PostgreSQL. To
avoid one task per command under load, a flag in Redis coalesces rings:

- `ring` sets the flag (SET NX) and enqueues a drain only if the flag was not set;
- the drain clears the flag *before* it reads pending commands.

So, in normal operation, a command committed before `ring` is seen either by the drain
this ring enqueued, or by the one already enqueued (which has not cleared the flag, so
has not read yet). Two things can swallow a ring: a message lost after its flag was set
(a flushed Redis, a killed worker), and a ring that finds the flag of a ring whose
enqueue then failed. Either way the command stays pending in PostgreSQL and the
sweeper rings its partition again within a few seconds: nothing is lost, only late.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

import redis
from kombu.exceptions import KombuError

import settings
from worker.metrics import DOORBELL_FAILURES
from worker.routing import queue_name

log = logging.getLogger(__name__)

FLAG_TTL_SECONDS = 30
_client: redis.Redis | None = None
_lock = threading.Lock()


def flag(partition: int) -> str:
    return f"wallet:doorbell:{partition}"


def redis_client() -> redis.Redis:
    """This process's Redis client (redis-py reconnects after a fork by itself).

    Short timeouts: a stalled Redis must not hold an accepted command's 202 for long.
    """
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                _client = redis.Redis.from_url(
                    settings.load().redis_url,
                    socket_connect_timeout=1,
                    socket_timeout=1,
                    health_check_interval=30,
                )
    return _client


def ring(partition: int, force: bool = False) -> bool:
    """Enqueue a drain of the partition unless one is already on its way."""
    return ring_many([partition], force=force)


def ring_many(partitions: Iterable[int], force: bool = False) -> bool:
    """Ring several partitions with one Redis round trip for the flags.

    Returns False when the broker could not be reached: the commands stay pending in
    PostgreSQL and the sweeper rings again once Redis is back. Never raises.
    """
    from worker.tasks import apply_partition  # the task module imports this one

    partitions = sorted(set(partitions))
    if not partitions:
        return True
    flagged: list[int] = []
    try:
        if force:
            to_enqueue = partitions
        else:
            pipe = redis_client().pipeline(transaction=False)
            for partition in partitions:
                pipe.set(flag(partition), "1", nx=True, ex=FLAG_TTL_SECONDS)
            flagged = [p for p, was_set in zip(partitions, pipe.execute(), strict=True) if was_set]
            to_enqueue = flagged
        for partition in to_enqueue:
            apply_partition.apply_async(args=[partition], queue=queue_name(partition), retry=False)
        return True
    except (redis.RedisError, KombuError, OSError) as error:
        log.warning("could not ring partitions %s: %r", partitions, error)
        DOORBELL_FAILURES.inc()
        for partition in flagged:
            answer(partition)
        return False


def answer(partition: int) -> None:
    """Called by a drain before it reads: rings from now on enqueue a new drain."""
    try:
        redis_client().delete(flag(partition))
    except redis.RedisError as error:
        log.warning("could not clear the doorbell of partition %s: %r", partition, error)
