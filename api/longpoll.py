"""Long polling: wait for a transaction to become final without holding a database
connection.

The request subscribes to the transaction's channel and waits for Redis to confirm
the subscription *before* it re-reads the row: a publish that reached Redis earlier
came after its commit, so that re-read sees the final status. Then it blocks on the
channel (a thread blocked in a Redis read, which releases the GIL) and re-reads once
at the end. Without Redis it polls the database instead, a few times a second.

Every waiter of a transaction is woken by the same message. Their final re-reads are
shared (one query, one connection, many readers), so 200 waiters waking together cost
one read, not 200 connections at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

import resources
import settings
from ledger import TransactionStatus
from worker.connections import connect_redis
from worker.notify import channel

POLL_SECONDS = 0.25
# Each parked waiter holds one Redis connection. They come from a pool of their own,
# sized like gunicorn's worker_connections, so waiters can never take the connections
# that ring doorbells (that pool starved once, under 200 waiters: a test caught it).
WAITERS_CLIENT = resources.Resource(
    "api.longpoll.waiters",
    lambda: connect_redis(
        socket_timeout=5, max_connections=settings.load().gunicorn_worker_connections
    ),
    lambda client, after_fork: None if after_fork else client.close(),
)


def waiters_client() -> redis.Redis:
    return WAITERS_CLIENT.get()


Read = Callable[[], dict[str, Any] | None]


def wait_final(tx_id: object, seconds: float, read: Read) -> dict[str, Any] | None:
    """The transaction once final, or as it is after `seconds`."""
    deadline = time.monotonic() + seconds
    try:
        return _wait_on_channel(tx_id, deadline, read)
    except redis.RedisError:
        return _poll(deadline, read)


def _wait_on_channel(tx_id: object, deadline: float, read: Read) -> dict[str, Any] | None:
    # redis-py leaves Redis.pubsub() unannotated.
    pubsub: redis.client.PubSub = waiters_client().pubsub()  # type: ignore[no-untyped-call]
    try:
        pubsub.subscribe(channel(tx_id))
        if not _confirmed(pubsub, deadline):
            return read()
        current = read()
        if current is None or _final(current):
            return current
        while (remaining := deadline - time.monotonic()) > 0:
            message = pubsub.get_message(ignore_subscribe_messages=True, timeout=remaining)
            if message is not None and message["type"] == "message":
                return WOKEN.get().read(tx_id, read)
        return read()
    finally:
        pubsub.close()


def _confirmed(pubsub: redis.client.PubSub, deadline: float) -> bool:
    while (remaining := deadline - time.monotonic()) > 0:
        message = pubsub.get_message(timeout=min(remaining, 1.0))
        if message is not None and message["type"] == "subscribe":
            return True
    return False


def _poll(deadline: float, read: Read) -> dict[str, Any] | None:
    while True:
        current = read()
        if current is None or _final(current) or time.monotonic() >= deadline:
            return current
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def _final(resource: dict[str, Any]) -> bool:
    status: str = resource["status"]
    return status != TransactionStatus.PENDING


@dataclass
class _Read:
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Any] | None = None
    error: BaseException | None = None


class SharedReads:
    """Concurrent reads of one key share one query (a "single flight").

    Only reads started after a waiter was woken join one another: each shared query
    began after the notification, hence after the commit, so it sees the final row.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[object, _Read] = {}

    def read(self, key: object, read: Read) -> dict[str, Any] | None:
        with self._lock:
            flight = self._running.get(key)
            leader = flight is None
            if flight is None:
                flight = self._running[key] = _Read()
        if leader:
            try:
                flight.result = read()
            except BaseException as error:
                flight.error = error
            finally:
                with self._lock:
                    del self._running[key]
                flight.done.set()
        else:
            flight.done.wait()
        if flight.error is not None:
            raise flight.error
        return flight.result


WOKEN = resources.Resource("api.longpoll.woken", SharedReads)
