"""What a drain tells operators: a log line per batch and a result for Flower; and the
periodic reconciliation that /metrics reports.

Called from worker.tasks in one line each, so the drain's own logic stays apart.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from ledger import TransactionStatus
from worker.app import app
from worker.doorbell import redis_client
from worker.drain import BatchResult

log = logging.getLogger("worker.drain")

RECONCILIATION_KEY = "wallet:reconciliation"


@dataclass
class DrainTally:
    """What one drain task applied, summed over its batches: its result in Flower."""

    partition: int
    batches: int = 0
    commands: int = 0
    completed: int = 0
    rejected: int = 0
    holds_expired: int = 0

    def summary(self) -> dict[str, int]:
        return {
            "partition": self.partition,
            "batches": self.batches,
            "commands": self.commands,
            "completed": self.completed,
            "rejected": self.rejected,
            "holds_expired": self.holds_expired,
        }


_current = threading.local()


def reports_drain(task: Callable[[int], None]) -> Callable[[int], dict[str, int]]:
    """Make a drain task return what it applied (Flower shows a task's return value,
    sent with its task-succeeded event, even without a result backend)."""

    @functools.wraps(task)
    def run(partition: int) -> dict[str, int]:
        tally = _current.tally = DrainTally(partition)
        try:
            task(partition)
        finally:
            _current.tally = None
        return tally.summary()

    return run


def batch_committed(batch: BatchResult) -> None:
    """After a batch's commit: one log line, and the drain task's tally."""
    if not (batch.finished or batch.expired):
        return  # a drain that found nothing: no line, or idle partitions would fill logs
    completed = sum(1 for c in batch.finished if c.status == TransactionStatus.COMPLETED)
    rejected = len(batch.finished) - completed
    tally: DrainTally | None = getattr(_current, "tally", None)
    if tally is not None:
        tally.batches += 1
        tally.commands += len(batch.finished)
        tally.completed += completed
        tally.rejected += rejected
        tally.holds_expired += batch.expired
    log.info(
        "batch applied",
        extra={
            "partition": batch.partition,
            "commands": len(batch.finished),
            "completed": completed,
            "rejected": rejected,
            "holds_expired": batch.expired,
            "duration_ms": round(batch.seconds * 1000, 2),
            "transaction_ids": [str(c.id) for c in batch.finished],
            # Index for index with transaction_ids; null for commands without one.
            "request_ids": [c.request_id for c in batch.finished],
        },
    )


@app.task(name="wallet.reconcile", ignore_result=True)
def reconcile_for_metrics() -> dict[str, Any]:
    """Run the reconciliation and keep its verdict in Redis for /metrics to report.

    The report reads every entry of the ledger: on a big ledger that is seconds of
    database time, so it runs on beat's schedule (WALLET_RECONCILE_EVERY), on the
    maintenance queue, never at scrape time.
    """
    from db.engine import connect
    from db.ledgers import all_ledgers
    from db.reconciliation import reconcile

    started = time.monotonic()
    with connect() as conn:
        ledgers = all_ledgers(conn)
    # Every ledger's books: the service is consistent only if each of them is.
    reports = [reconcile(ledger.id) for ledger in ledgers]
    verdict = {
        "ok": all(r["ok"] for r in reports),
        "checked_at": time.time(),
        "duration_s": round(time.monotonic() - started, 3),
        "ledgers": len(reports),
        "not_ok": [r["ledger"] for r in reports if not r["ok"]],
        "mismatches": sum(len(a["mismatches"]) for r in reports for a in r["assets"]),
        "unbalanced_transactions": sum(len(r["unbalanced_transactions"]) for r in reports),
    }
    if not verdict["ok"]:
        log.error("reconciliation not ok", extra={k: v for k, v in verdict.items()})
    try:
        redis_client().set(RECONCILIATION_KEY, json.dumps(verdict))
    except redis.RedisError as error:
        log.warning("reconciliation verdict not stored: %r", error)
    return verdict
