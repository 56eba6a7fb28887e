"""/v1/admin for operators: partitions and stalls, the transaction search, stuck callbacks.

Everything here is scope `admin`. What operators do with it, step by step, is in the
README (Operating it).
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

import redis
from kombu.exceptions import KombuError

from api import cursors
from api.assets import asset_filter
from api.auth import current_client, require
from api.blueprint import Blueprint
from api.errors import ApiError
from api.schemas import (
    AdminTransactionQuerySchema,
    CallbackPageSchema,
    CallbackQuerySchema,
    HistoryPageSchema,
    PartitionsSchema,
    RedeliverySchema,
)
from db import admin_reads, partitioning, reads
from db import callbacks as outbox
from db.engine import autocommit, connect
from worker.consumers import census
from worker.doorbell import redis_client
from worker.routing import queue_name

blp = Blueprint(
    "operators",
    __name__,
    url_prefix="/v1/admin",
    description="Operators: partitions, the transaction search, callback deliveries.",
)


@blp.route("/partitions", methods=["GET"])
@require("admin")
@blp.response(200, PartitionsSchema)
@blp.secured()
def partitions() -> Any:
    """Each partition's backlog and consumers; a backlog with no consumer is a stall"""
    return partition_report()


def partition_report() -> dict[str, Any]:
    """The partitions view, shared by the endpoint and /metrics (api.metrics)."""
    count = partitioning.current()  # the database's count: `stack repartition` changes it
    with autocommit() as conn:
        backlogs = admin_reads.partition_backlogs(conn, count)
    taken = census.consumers()
    drained: list[Any] = [None] * count
    broker = "ok"
    try:
        drained = redis_client().mget([f"wallet:drained:{p}" for p in range(count)])
    except redis.RedisError:
        broker = "unreachable"
    items = []
    for backlog, last in zip(backlogs, drained, strict=True):
        consumers = None if taken is None else taken.consumers.get(queue_name(backlog.partition), 0)
        items.append(
            {
                "partition": backlog.partition,
                "pending": backlog.pending,
                "oldest_pending_age_s": backlog.oldest_pending_age_s,
                "consumers": consumers,
                "stalled": None if consumers is None else backlog.pending > 0 and consumers == 0,
                "last_drain_at": _iso_epoch(last),
            }
        )
    return {
        "items": items,
        "consumers_counted_at": _iso_epoch(taken.taken_at) if taken else None,
        "broker": broker,
    }


@blp.route("/transactions", methods=["GET"])
@require("admin")
@blp.arguments(AdminTransactionQuerySchema(), location="query", as_kwargs=True)
@blp.response(200, HistoryPageSchema)
@blp.secured(422)
def search_transactions(
    limit: int,
    status: str | None = None,
    type: str | None = None,
    user_id: str | None = None,
    asset: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    cursor: str | None = None,
) -> Any:
    """The ledger's transactions, newest first, filtered, in keyset pages"""
    ledger_id = current_client().ledger_id
    asset_id = asset_filter(ledger_id, asset)
    where = admin_reads.TransactionFilter(status, type, user_id, asset_id, created_from, created_to)
    before = cursors.decode_int(cursor, "seq") if cursor else None
    with autocommit() as conn:
        items, next_seq = admin_reads.search_transactions(conn, ledger_id, where, limit, before)
    return {"items": items, "next_cursor": cursors.encode("seq", next_seq) if next_seq else None}


@blp.route("/callbacks", methods=["GET"])
@require("admin")
@blp.arguments(CallbackQuerySchema(), location="query", as_kwargs=True)
@blp.response(200, CallbackPageSchema)
@blp.secured(422)
def callback_deliveries(limit: int, status: str | None = None, cursor: str | None = None) -> Any:
    """Callback deliveries across transactions (?status=failed|pending), newest first"""
    before = None
    if cursor:
        try:
            before = uuid.UUID(cursors.decode(cursor, "event"))
        except ValueError:
            raise cursors.invalid() from None
    with autocommit() as conn:
        ledger_id = current_client().ledger_id
        items, next_id = admin_reads.callback_deliveries(conn, ledger_id, status, limit, before)
    return {"items": items, "next_cursor": cursors.encode("event", next_id) if next_id else None}


@blp.route("/callbacks/<uuid:event_id>/redeliver", methods=["POST"])
@require("admin")
@blp.response(202, RedeliverySchema)
@blp.secured(404, 409)
def redeliver(event_id: uuid.UUID) -> Any:
    """Send a failed or pending callback again now: same event id, same body

    404 for an unknown event id; 409 `callback_delivered` for one already delivered
    (the receiver has it: sending it again would only test its dedupe).
    """
    with connect() as conn:
        row = outbox.redeliver(conn, current_client().ledger_id, event_id)
    if row is None:
        raise ApiError(404, "not_found", f"There is no callback delivery {event_id}.")
    if row.status == "delivered":
        raise ApiError(409, "callback_delivered", f"Callback {event_id} was already delivered.")
    from worker.tasks import deliver_callback  # the API enqueues, like a doorbell

    # If the broker is down, the delivery is still due now: the sweeper enqueues it.
    with contextlib.suppress(KombuError, redis.RedisError, OSError):
        deliver_callback.apply_async(args=[str(event_id)], queue="callbacks", retry=False)
    return {
        "event_id": str(row.id),
        "transaction_id": str(row.transaction_id),
        "status": row.status,
        "next_attempt_at": reads.iso(row.next_attempt_at),
    }, 202


def _iso_epoch(value: Any) -> str | None:
    if value is None:
        return None
    return reads.iso(datetime.fromtimestamp(float(value), UTC))
