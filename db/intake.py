"""Recording accepted commands: one short transaction, the constraint decides races."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, text
from sqlalchemy.dialects.postgresql import insert

from db.ids import uuid7
from db.models import Transaction


@dataclass(frozen=True)
class NewCommand:
    """A validated command, ready to be stored as a pending transaction."""

    client_id: uuid.UUID
    idempotency_key: str
    fingerprint: str
    type: str
    partition: int
    user_id: str
    asset_id: int
    amount: int | None = None
    to_user_id: str | None = None
    reference_id: uuid.UUID | None = None
    metadata: dict[str, Any] | None = None
    reason: str | None = None
    item_id: str | None = None
    callback_url: str | None = None
    expires_in: int | None = None
    id: uuid.UUID = field(default_factory=uuid7)


@dataclass(frozen=True)
class Recorded:
    """The stored transaction for a command, and whether this call created it."""

    row: Row[Any]
    created: bool

    @property
    def replayed(self) -> bool:
        return not self.created


# Everything the API shows, so a fresh 202 needs no second read.
RETURNED = tuple(Transaction.__table__.columns)


def fingerprint(kind: str, fields: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical request: its type and fields, key order and spacing aside.

    A single request and a batch item with the same type and fields have the same
    fingerprint, so either may replay the other.
    """
    canonical = json.dumps(
        {"type": kind, "fields": dict(fields)}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def record(conn: Connection, commands: Sequence[NewCommand]) -> list[Recorded]:
    """Insert commands as pending; a (client, key) already stored is returned instead.

    ON CONFLICT DO NOTHING makes the unique constraint the judge: of two identical
    requests racing, one inserts and the other waits for it, then finds its row.
    """
    values = [_values(c) for c in commands]
    if len(values) > 1:
        # Acceptance order is request order: take the sequence numbers in that order,
        # then insert sorted by key, so that two batches sharing keys lock them in the
        # same order and cannot deadlock (results are matched back by id).
        seqs = conn.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence('transactions', 'seq')) "
                "FROM generate_series(1, :n) ORDER BY 1"
            ),
            {"n": len(values)},
        ).scalars()
        for value, seq in zip(values, seqs, strict=True):
            value["seq"] = seq
        values.sort(key=lambda v: (str(v["client_id"]), v["idempotency_key"]))
    statement = (
        insert(Transaction)
        .values(values)
        .on_conflict_do_nothing(constraint="transactions_client_key_key")
        .returning(*RETURNED)
    )
    inserted = {row.id: row for row in conn.execute(statement)}
    missing = [c for c in commands if c.id not in inserted]
    existing = _existing(conn, missing) if missing else {}
    results = []
    for command in commands:
        if command.id in inserted:
            results.append(Recorded(inserted[command.id], created=True))
        else:
            results.append(Recorded(existing[(command.client_id, command.idempotency_key)], False))
    return results


def _values(command: NewCommand) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": command.id,
        "client_id": command.client_id,
        "idempotency_key": command.idempotency_key,
        "fingerprint": command.fingerprint,
        "type": command.type,
        "status": "pending",
        "partition": command.partition,
        "user_id": command.user_id,
        "to_user_id": command.to_user_id,
        "asset_id": command.asset_id,
        "amount": command.amount,
        "reference_id": command.reference_id,
        "metadata": command.metadata,
        "reason": command.reason,
        "item_id": command.item_id,
        "callback_url": command.callback_url,
        "expires_at": None,
    }
    if command.expires_in is not None:
        # The database's clock, like created_at: a hold's life is measured on one clock.
        values["expires_at"] = func.now() + func.make_interval(
            0, 0, 0, 0, 0, 0, bindparam(f"expires_in_{command.id.hex}", command.expires_in)
        )
    return values


def _existing(
    conn: Connection, commands: Sequence[NewCommand]
) -> dict[tuple[uuid.UUID, str], Row[Any]]:
    rows = conn.execute(
        text(
            "SELECT t.* FROM transactions t "
            "JOIN unnest(CAST(:clients AS uuid[]), CAST(:keys AS text[])) AS k(client_id, key) "
            "ON t.client_id = k.client_id AND t.idempotency_key = k.key"
        ),
        {
            "clients": [str(c.client_id) for c in commands],
            "keys": [c.idempotency_key for c in commands],
        },
    ).all()
    return {(row.client_id, row.idempotency_key): row for row in rows}
