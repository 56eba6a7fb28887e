"""What operators read: partition backlogs, the transaction search, stuck callbacks.

Each read is a few index steps however large the ledger is: pages are keyset pages
on `seq` (transactions) or on the event id (callbacks, uuid7 so time-ordered), and
every filter either has an index of its own or is checked along the `seq` index.
`tests/integration/test_admin_search.py` reads the plans.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text

from db import reads
from ledger import TransactionStatus

# created_at is the intake transaction's start and seq is drawn inside it, so the two
# orders disagree by at most an intake transaction's length (bounded by the 30 s
# statement timeout). Seq bounds found for a time are widened by this much.
CLOCK_SLACK = timedelta(seconds=60)


@dataclass(frozen=True)
class Backlog:
    """One partition's pending work, from PostgreSQL."""

    partition: int
    pending: int
    oldest_pending_age_s: float | None


def partition_backlogs(conn: Connection, partitions: int) -> list[Backlog]:
    """Pending count and age of the oldest pending command, per partition.

    Both read the pending-by-partition index only: the count walks the pending rows
    (few, unless the partition is stuck), the oldest is its first entry.
    """
    rows = conn.execute(
        text(
            "SELECT p.partition, "
            "  (SELECT count(*) FROM transactions t "
            "   WHERE t.partition = p.partition AND t.status = 'pending') AS pending, "
            "  extract(epoch FROM now() - (SELECT t.created_at FROM transactions t "
            "   WHERE t.partition = p.partition AND t.status = 'pending' "
            "   ORDER BY t.seq LIMIT 1)) AS oldest "
            "FROM generate_series(0, :n - 1) AS p(partition) ORDER BY p.partition"
        ),
        {"n": partitions},
    ).all()
    return [
        Backlog(
            r.partition,
            int(r.pending),
            None if r.oldest is None else max(0.0, round(float(r.oldest), 3)),
        )
        for r in rows
    ]


@dataclass(frozen=True)
class TransactionFilter:
    """The admin search's filters; None means any."""

    status: str | None = None
    type: str | None = None
    user_id: str | None = None
    asset_id: int | None = None
    created_from: datetime | None = None  # inclusive
    created_to: datetime | None = None  # exclusive


def search_transactions(
    conn: Connection,
    ledger_id: int,
    where: TransactionFilter,
    limit: int,
    before_seq: int | None,
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of transactions, newest first (by seq), and the cursor of the next page.

    A player's filter is two index range scans (as subject, as payee) merged, as in the
    wallet history; a time window becomes a seq range first (`_seq_after`), so that
    "a day last month" starts its scan there instead of at the newest row.
    """
    conditions = ["t.ledger_id = :ledger"]
    params: dict[str, Any] = {"n": limit + 1, "ledger": ledger_id}
    if before_seq is not None:
        conditions.append("t.seq < :before")
        params["before"] = before_seq
    if where.status is not None:
        conditions.append("t.status = :status")
        params["status"] = where.status
        if where.status == TransactionStatus.PENDING:
            # Lets the planner use the pending-by-partition index (see 0004).
            conditions.append("t.partition >= 0")
    if where.type is not None:
        conditions.append("t.type = :type")
        params["type"] = where.type
    if where.asset_id is not None:
        conditions.append("t.asset_id = :asset")
        params["asset"] = where.asset_id
    if where.created_from is not None:
        conditions.append("t.created_at >= :created_from")
        params["created_from"] = where.created_from
        low = _seq_after(conn, where.created_from - CLOCK_SLACK)
        if low is not None:
            conditions.append("t.seq >= :seq_low")
            params["seq_low"] = low
    if where.created_to is not None:
        conditions.append("t.created_at < :created_to")
        params["created_to"] = where.created_to
        high = _seq_after(conn, where.created_to + CLOCK_SLACK)
        if high is not None:
            conditions.append("t.seq < :seq_high")
            params["seq_high"] = high
    condition = " AND ".join(conditions)
    columns = reads.TRANSACTION_COLUMNS
    if where.user_id is None:
        statement = (
            f"SELECT {columns} FROM transactions t WHERE {condition} ORDER BY t.seq DESC LIMIT :n"
        )
    else:
        params["user"] = where.user_id
        statement = (
            f"(SELECT {columns} FROM transactions t WHERE t.user_id = :user AND {condition} "
            "ORDER BY t.seq DESC LIMIT :n) UNION "
            f"(SELECT {columns} FROM transactions t WHERE t.to_user_id = :user AND {condition} "
            "ORDER BY t.seq DESC LIMIT :n) ORDER BY seq DESC LIMIT :n"
        )
    rows = conn.execute(text(statement), params).all()
    next_seq = rows[limit - 1].seq if len(rows) > limit else None
    return reads.resources(conn, rows[:limit]), next_seq


def _seq_after(conn: Connection, moment: datetime) -> int | None:
    """The lowest seq whose transaction was created after `moment` (binary search along
    the seq index: about 25 index steps for ten million rows); None if there is none."""
    low, high = conn.execute(text("SELECT min(seq), max(seq) FROM transactions")).one()
    if high is None:
        return None
    high += 1  # the answer lies in [low, high]; high means "none after"
    while low < high:
        middle = (low + high) // 2
        created = conn.execute(
            text("SELECT created_at FROM transactions WHERE seq >= :s ORDER BY seq LIMIT 1"),
            {"s": middle},
        ).scalar()
        if created is not None and created > moment:
            high = middle
        else:
            low = middle + 1
    return int(low)


def callback_deliveries(
    conn: Connection, ledger_id: int, status: str | None, limit: int, before: uuid.UUID | None
) -> tuple[list[dict[str, Any]], uuid.UUID | None]:
    """A page of a ledger's callback deliveries across transactions, newest first, by
    event id."""
    conditions = ["ledger_id = :ledger"]
    params: dict[str, Any] = {"n": limit + 1, "ledger": ledger_id}
    if status is not None:
        conditions.append("status = :status")
        params["status"] = status
    if before is not None:
        conditions.append("id < :before")
        params["before"] = before
    rows = conn.execute(
        text(
            "SELECT id, transaction_id, url, event, status, attempts, next_attempt_at, "
            "last_error, created_at, delivered_at FROM callback_deliveries "
            f"WHERE {' AND '.join(conditions)} ORDER BY id DESC LIMIT :n"
        ),
        params,
    ).all()
    page = [
        {
            "event_id": str(r.id),
            "transaction_id": str(r.transaction_id),
            "url": r.url,
            "event": r.event,
            "status": r.status,
            "attempts": r.attempts,
            "last_error": r.last_error,
            "next_attempt_at": reads.iso(r.next_attempt_at) if r.status == "pending" else None,
            "created_at": reads.iso(r.created_at),
            "delivered_at": reads.iso(r.delivered_at),
        }
        for r in rows[:limit]
    ]
    return page, rows[limit - 1].id if len(rows) > limit else None
