"""The callback outbox: written with the final status, delivered at least once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, text

from db import reads
from db.ids import uuid7
from ledger import TransactionStatus

COMPLETED, REJECTED = "transaction.completed", "transaction.rejected"


def record(
    conn: Connection, finished: Sequence[tuple[uuid.UUID, uuid.UUID, str]]
) -> list[uuid.UUID]:
    """Outbox rows for (transaction id, client id, url) that just became final.

    Called inside the transaction that made them final, after their rows were written,
    so the payload is the transaction exactly as it became final.
    """
    if not finished:
        return []
    resources = reads.transactions(conn, [tx_id for tx_id, _, _ in finished])
    ids, txs, clients, urls, events, payloads = [], [], [], [], [], []
    for tx_id, client_id, url in finished:
        resource = resources[tx_id]
        event = COMPLETED if resource["status"] == TransactionStatus.COMPLETED else REJECTED
        ids.append(uuid7())
        txs.append(tx_id)
        clients.append(client_id)
        urls.append(url)
        events.append(event)
        payloads.append(json.dumps({"event": event, "data": resource}, separators=(",", ":")))
    conn.execute(
        text(
            "INSERT INTO callback_deliveries "
            "(id, transaction_id, client_id, url, event, payload, ledger_id) "
            "SELECT u.*, t.ledger_id FROM unnest(CAST(:ids AS uuid[]), CAST(:txs AS uuid[]), "
            "CAST(:clients AS uuid[]), CAST(:urls AS text[]), CAST(:events AS text[]), "
            "CAST(:payloads AS text[])) AS u(id, tx, client, url, event, payload) "
            "JOIN transactions t ON t.id = u.tx"
        ),
        {
            "ids": ids,
            "txs": txs,
            "clients": clients,
            "urls": urls,
            "events": events,
            "payloads": payloads,
        },
    )
    return ids


def claim(conn: Connection, delivery_id: uuid.UUID, lease_seconds: float) -> Row[Any] | None:
    """Take a due delivery for one attempt; None if it is not due or someone has it.

    The lease (pushing next_attempt_at ahead) is what makes a second copy of the task a
    no-op, and what brings the delivery back if this worker dies mid-attempt.
    """
    return conn.execute(
        text(
            "UPDATE callback_deliveries SET attempts = attempts + 1, "
            "next_attempt_at = now() + make_interval(secs => :lease) "
            "WHERE id = :id AND status = 'pending' AND next_attempt_at <= now() "
            "RETURNING id, transaction_id, client_id, url, event, payload, attempts, created_at"
        ),
        {"id": delivery_id, "lease": lease_seconds},
    ).first()


def record_attempt(
    conn: Connection,
    delivery_id: uuid.UUID,
    *,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
    outcome: str,
    retry_in_seconds: float | None = None,
) -> None:
    """Log one attempt and move the delivery on: delivered, failed, or due again later."""
    conn.execute(
        text(
            "WITH next AS (SELECT CASE WHEN :retry IS NULL THEN NULL "
            "  ELSE now() + make_interval(secs => CAST(:retry AS double precision)) END AS at) "
            "INSERT INTO callback_attempts (delivery_id, status_code, error, duration_ms, "
            "next_attempt_at) SELECT :id, :code, :error, :ms, at FROM next"
        ),
        {
            "id": delivery_id,
            "code": status_code,
            "error": error,
            "ms": duration_ms,
            "retry": retry_in_seconds,
        },
    )
    conn.execute(
        text(
            "UPDATE callback_deliveries SET status = :outcome, last_error = :error, "
            "delivered_at = CASE WHEN :outcome = 'delivered' THEN now() END, "
            "next_attempt_at = CASE WHEN :retry IS NULL THEN next_attempt_at "
            "  ELSE now() + make_interval(secs => CAST(:retry AS double precision)) END "
            "WHERE id = :id"
        ),
        {"id": delivery_id, "outcome": outcome, "error": error, "retry": retry_in_seconds},
    )


def due(conn: Connection, limit: int) -> list[uuid.UUID]:
    """Deliveries whose next attempt is due. A first attempt is left a few seconds to
    the task enqueued right after the commit, so it is not sent twice for nothing."""
    rows = conn.execute(
        text(
            "SELECT id FROM callback_deliveries WHERE status = 'pending' "
            "AND next_attempt_at <= now() "
            "AND (attempts > 0 OR created_at < now() - interval '5 seconds') "
            "ORDER BY next_attempt_at LIMIT :n"
        ),
        {"n": limit},
    ).all()
    return [r.id for r in rows]


def for_transaction(conn: Connection, tx_id: uuid.UUID) -> dict[str, Any]:
    """The callback of a transaction and every attempt at delivering it, oldest first."""
    delivery = conn.execute(
        text(
            "SELECT id, url, event, status, attempts, next_attempt_at, delivered_at, last_error "
            "FROM callback_deliveries WHERE transaction_id = :tx ORDER BY created_at LIMIT 1"
        ),
        {"tx": tx_id},
    ).first()
    view: dict[str, Any] = {
        "transaction_id": str(tx_id),
        "event_id": None,
        "event": None,
        "url": None,
        "status": None,
        "next_attempt_at": None,
        "delivered_at": None,
        "items": [],
    }
    if delivery is None:
        return view
    attempts = conn.execute(
        text(
            "SELECT attempted_at, status_code, error, duration_ms, next_attempt_at "
            "FROM callback_attempts WHERE delivery_id = :id ORDER BY id"
        ),
        {"id": delivery.id},
    ).all()
    view.update(
        event_id=str(delivery.id),
        event=delivery.event,
        url=delivery.url,
        status=delivery.status,
        next_attempt_at=reads.iso(delivery.next_attempt_at)
        if delivery.status == "pending"
        else None,
        delivered_at=reads.iso(delivery.delivered_at),
        items=[
            {
                "attempt": number,
                "attempted_at": reads.iso(a.attempted_at),
                "status_code": a.status_code,
                "error": a.error,
                "duration_ms": a.duration_ms,
                "next_attempt_at": reads.iso(a.next_attempt_at),
            }
            for number, a in enumerate(attempts, start=1)
        ],
    )
    return view


def redeliver(conn: Connection, ledger_id: int, delivery_id: uuid.UUID) -> Row[Any] | None:
    """Make a failed or pending delivery due now: same event id, same body.

    A failed one becomes pending again. A pending one in the middle of an attempt (its
    lease is on: one more attempt counted than recorded) is left to that attempt, so a
    redelivery never sends twice at once. Returns the row (any status), None if unknown.
    """
    conn.execute(
        text(
            "UPDATE callback_deliveries d SET status = 'pending', next_attempt_at = now() "
            "WHERE d.ledger_id = :ledger AND d.id = :id "
            "AND (d.status = 'failed' OR (d.status = 'pending' AND "
            "  d.attempts = (SELECT count(*) FROM callback_attempts a WHERE a.delivery_id = d.id)))"
        ),
        {"ledger": ledger_id, "id": delivery_id},
    )
    return conn.execute(
        text(
            "SELECT id, transaction_id, status, attempts, next_attempt_at "
            "FROM callback_deliveries WHERE ledger_id = :ledger AND id = :id"
        ),
        {"ledger": ledger_id, "id": delivery_id},
    ).first()
