"""After a batch commits: wake long-polling readers of its transactions.

One PUBLISH per finished transaction, on a channel of its own, pipelined per batch. A
channel nobody listens to costs Redis next to nothing, and a reader never receives
messages for transactions it is not waiting on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import redis

from worker.doorbell import redis_client

log = logging.getLogger(__name__)


def channel(tx_id: object) -> str:
    return f"wallet:final:{tx_id}"


def publish_final(finished: Iterable[tuple[object, str]], drained: int | None = None) -> None:
    """Announce (transaction id, status) pairs; a failure only delays the readers.

    With `drained` (a partition), the same round trip records when that partition's
    last batch committed, for the operators' partitions view (api.operators).
    """
    pipe = redis_client().pipeline(transaction=False)
    count = 0
    for tx_id, status in finished:
        pipe.publish(channel(tx_id), status)
        count += 1
    if not count:
        return
    if drained is not None and drained >= 0:
        pipe.set(f"wallet:drained:{drained}", f"{time.time():.3f}")
    try:
        pipe.execute()
    except redis.RedisError as error:
        # Readers fall back to their final re-read; nothing is lost.
        log.warning("could not announce %d final transactions: %r", count, error)
