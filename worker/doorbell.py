"""Ring a partition's doorbell: make sure a drain of it starts after this call.

The message carries nothing but the partition; the commands are in PostgreSQL. To
avoid one task per command under load, a flag in Redis coalesces rings:

- `ring` sets the flag (SET NX) and enqueues a drain only if the flag was not set;
- the drain clears the flag *before* it reads pending commands.

So a command committed before `ring` is seen either by the drain this ring enqueued,
or by the one already enqueued (which has not cleared the flag yet, so has not read
yet). A lost message leaves the flag until it expires; the sweeper covers that gap.
"""

from __future__ import annotations

import logging
import threading

import redis
from kombu.exceptions import KombuError

import settings
from worker.routing import queue_name

log = logging.getLogger(__name__)

FLAG_TTL_SECONDS = 30
_client: redis.Redis | None = None
_lock = threading.Lock()


def flag(partition: int) -> str:
    return f"wallet:doorbell:{partition}"


def redis_client() -> redis.Redis:
    """This process's Redis client (redis-py reconnects after a fork by itself)."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                _client = redis.Redis.from_url(
                    settings.load().redis_url,
                    socket_connect_timeout=1,
                    socket_timeout=2,
                    health_check_interval=30,
                )
    return _client


def ring(partition: int, force: bool = False) -> bool:
    """Enqueue a drain of the partition unless one is already on its way.

    Returns False when the broker could not be reached: the command stays pending in
    PostgreSQL and the sweeper rings again once Redis is back. Never raises.
    """
    from worker.tasks import apply_partition  # the task module imports this one

    flagged = False
    try:
        if not force:
            flagged = bool(redis_client().set(flag(partition), "1", nx=True, ex=FLAG_TTL_SECONDS))
            if not flagged:
                return True
        apply_partition.apply_async(args=[partition], queue=queue_name(partition), retry=False)
        return True
    except (redis.RedisError, KombuError, OSError) as error:
        log.warning("could not ring partition %s: %r", partition, error)
        if flagged:
            answer(partition)
        return False


def answer(partition: int) -> None:
    """Called by a drain before it reads: rings from now on enqueue a new drain."""
    try:
        redis_client().delete(flag(partition))
    except redis.RedisError as error:
        log.warning("could not clear the doorbell of partition %s: %r", partition, error)
