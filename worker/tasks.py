"""Celery tasks: the partition drain and the sweeper."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from kombu.exceptions import KombuError

import settings
from db import batch as store
from db import callbacks as outbox
from db import partitioning
from db.engine import connect, is_unavailable
from db.ledgers import ledgers
from ledger import TransactionStatus
from worker import callbacks, doorbell, observe
from worker.app import BoundTask, app, worker_ready
from worker.drain import BatchResult, DrainResult, drain
from worker.lease import PartitionLease
from worker.metrics import (
    APPLY_LATENCY,
    BATCH_SIZE,
    COMMANDS_APPLIED,
    COMMANDS_REJECTED,
    HOLDS_EXPIRED,
)
from worker.notify import publish_final
from worker.routing import partition_of_queue

log = logging.getLogger(__name__)
SETTINGS = settings.load()
# A drain gives its worker back after this long and rings again: other partitions
# served by the same process get their turn, and no message stays unacked for long.
DRAIN_BUDGET_SECONDS = 5.0
# How long a drain with nothing left waits for a ring before it lets go: a command that
# arrives meanwhile is applied by this chain at once, instead of starting a task of its
# own (a Celery message, a worker thread, the chain lock). A lingering chain holds a
# worker thread and a Redis connection, nothing else. Measured (README, Performance):
# at 30 commands/s, 1 s instead of 50 ms took the apply latency p50 from 8.0 to 5.8 ms.
LINGER_SECONDS = 1.0
# A lingering BLPOP must return before the doorbell client's socket timeout, or it would
# end as a Redis error (a silent let-go, nothing lost).
assert LINGER_SECONDS < doorbell.SOCKET_TIMEOUT_SECONDS


@app.task(name="wallet.apply_partition", ignore_result=True)
@observe.reports_drain
def apply_partition(partition: int) -> None:
    """Drain one partition. The message is only a doorbell; PostgreSQL holds the work.

    One drain chain per partition at a time (worker.lease): a second one exits at once.
    The chain drains, lingers briefly for a ring when nothing is left, and lets go of
    the lease only after a last batch has found nothing, so that no ring is ever lost.
    """
    try:
        with PartitionLease(partition) as lease:
            if not lease.acquire():
                return  # the running chain holds the flag and sees every rung command
            deadline = time.monotonic() + DRAIN_BUDGET_SECONDS

            def batches(budget: float) -> DrainResult:
                return drain(
                    partition,
                    batch_size=SETTINGS.drain_batch_size,
                    budget_seconds=budget,
                    on_batch=_after_commit,
                )

            while True:
                result = batches(max(0.1, deadline - time.monotonic()))
                if result.more or time.monotonic() >= deadline:
                    lease.hand_off()  # the worker thread goes back; the next chain is queued
                    return
                if lease.rung():
                    # Rung while the batch ran: commands arrive faster than batches
                    # commit. Let a few more join, so that one transaction (one WAL
                    # flush) applies several of them.
                    time.sleep(SETTINGS.drain_gather_seconds)
                    continue
                if lease.linger(LINGER_SECONDS):
                    continue  # woken from idle: the command that rang is applied at once
                if not lease.let_go(lambda: _found_work(batches(0.1))):
                    return
    except Exception as error:
        if is_unavailable(error):
            log.warning("partition %s not drained: database unavailable: %s", partition, error)
        else:
            log.exception("partition %s: the drain failed", partition)


def _found_work(result: DrainResult) -> bool:
    return bool(result.finished or result.more)


@app.task(name="wallet.deliver_callback", ignore_result=True, bind=True, max_retries=None)
def deliver_callback(self: BoundTask, delivery_id: str) -> str:
    """One attempt at one callback (queue `callbacks`: never in a partition's way).

    A failed attempt is a Celery retry (RETRY in Flower) or, once final, a failure; the
    outbox row stays the truth, and its lease keeps a retried task and the sweeper's
    copy from sending twice.
    """
    return callbacks.settle(self, callbacks.deliver_attempt(uuid.UUID(delivery_id)))


# No task events: a sweep a second would drown the drains in Flower's task list; its
# work shows in wallet_oldest_pending_seconds instead (README, Operating it).
@app.task(name="wallet.sweep", ignore_result=True, send_events=False)
def sweep() -> list[int]:
    """Ring every partition with a command pending too long or a hold that ran out, and
    enqueue every callback whose next attempt is due."""
    with connect() as conn:
        partitions = store.partitions_to_sweep(
            conn, SETTINGS.sweep_after_seconds, SETTINGS.partitions
        )
        due = outbox.due(conn, 500)
    doorbell.ring_overdue(partitions, SETTINGS.sweep_after_seconds)
    _enqueue_callbacks(due)
    return partitions


@worker_ready.connect
def drain_on_start(sender: Any, **_: Any) -> None:
    """A worker that (re)starts drains its partitions at once instead of waiting for beat."""
    # Queues beyond the partition count in force (kept for a repartition) have no work.
    count = partitioning.current()
    mine = [
        p
        for q in sender.app.amqp.queues.consume_from
        if (p := partition_of_queue(q)) is not None and p < count
    ]
    # A flag left by this worker's previous life would swallow rings until it expired.
    for partition in mine:
        doorbell.release_flag(partition)
    doorbell.ring_many(mine, force=True)


def _after_commit(batch: BatchResult) -> None:
    """Once a batch is committed: wake its long-pollers and any partition waiting on
    it, send its callbacks, count it."""
    publish_final(((c.id, c.status) for c in batch.finished), drained=batch.partition)
    doorbell.ring_many(batch.ring)
    _enqueue_callbacks(batch.callbacks)
    _observe(batch)
    observe.batch_committed(batch)


def _enqueue_callbacks(ids: list[uuid.UUID]) -> None:
    """Best effort: a callback not enqueued now is found by the sweeper when due."""
    try:
        for delivery_id in ids:
            deliver_callback.apply_async(args=[str(delivery_id)], queue="callbacks", retry=False)
    except (KombuError, OSError) as error:
        log.warning("callbacks not enqueued, the sweeper will: %r", error)


def _observe(batch: BatchResult) -> None:
    now = datetime.now(UTC)
    if batch.finished:
        BATCH_SIZE.observe(len(batch.finished))
    for command in batch.finished:
        if command.status == TransactionStatus.COMPLETED:
            COMMANDS_APPLIED.labels(command.type, ledgers.code_of(command.ledger_id)).inc()
        else:
            COMMANDS_REJECTED.labels(
                command.type, command.code or "unknown", ledgers.code_of(command.ledger_id)
            ).inc()
        APPLY_LATENCY.observe(max(0.0, (now - command.accepted_at).total_seconds()))
    if batch.expired:
        HOLDS_EXPIRED.inc(batch.expired)
