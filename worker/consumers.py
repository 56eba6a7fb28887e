"""Which live workers consume which queues: the ground truth from Celery's control API.

A command line says which queues a worker was started with; only the worker knows
what it consumes now (a consumer cancelled from Flower, a worker frozen or dead). So
the census asks every worker (`inspect().active_queues()`, a broadcast over the broker
that waits `INSPECT_TIMEOUT` for the replies) and counts, per queue, the workers that
answered consuming it.

A broadcast costs a round of messages and a second of waiting, so one census serves
every request and scrape of this process for `FRESH_FOR` seconds, and it is taken on
a thread of its own: a caller gets the last census at once, never waits for the
broker (only the very first caller waits, at most `FIRST_WAIT` seconds). When the
broker cannot be reached, or no census succeeded for `KNOWN_FOR` seconds, the
consumers are unknown (None), never guessed.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

INSPECT_TIMEOUT = 1.0
FRESH_FOR = 3.0
KNOWN_FOR = 15.0
FIRST_WAIT = 2.5


@dataclass(frozen=True)
class Census:
    """Live consumers per queue name, and when they were counted (time.time())."""

    consumers: dict[str, int]
    taken_at: float


class ConsumerCensus:
    """A cached, background-refreshed census of queue consumers for one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._census: Census | None = None
        self._refreshing: threading.Thread | None = None
        self._first = threading.Event()

    def consumers(self) -> Census | None:
        """The latest census still worth trusting, or None (unknown)."""
        census = self._census
        if census is None or time.time() - census.taken_at > FRESH_FOR:
            self._refresh_in_background()
            if census is None:
                self._first.wait(FIRST_WAIT)
                census = self._census
        if census is None or time.time() - census.taken_at > KNOWN_FOR:
            return None
        return census

    def _refresh_in_background(self) -> None:
        with self._lock:
            if self._refreshing is not None and self._refreshing.is_alive():
                return
            self._refreshing = threading.Thread(
                target=self._refresh, name="consumer-census", daemon=True
            )
            self._refreshing.start()

    def _refresh(self) -> None:
        try:
            self._census = Census(take(), time.time())
        except Exception as error:  # the broker is unreachable: consumers unknown
            log.warning("consumer census failed: %r", error)
        finally:
            self._first.set()


def take() -> dict[str, int]:
    """Ask every live worker what it consumes; raises if the broker cannot be reached."""
    from worker.app import app

    replies = app.control.inspect(timeout=INSPECT_TIMEOUT).active_queues() or {}
    counts: dict[str, int] = {}
    for queues in replies.values():
        for queue in queues or []:
            counts[queue["name"]] = counts.get(queue["name"], 0) + 1
    return counts


census = ConsumerCensus()
