"""Recording accepted commands: one short transaction, the constraint decides races."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, text

import settings
from db.ids import uuid7
from db.partitioning import INTAKE_LOCK_NAMESPACE
from db.reads import TransactionRow
from ledger import TransactionStatus


@dataclass(frozen=True)
class NewCommand:
    """A validated command, ready to be stored as a pending transaction."""

    ledger_id: int
    client_id: uuid.UUID
    idempotency_key: str
    fingerprint: str
    type: str
    # ledger.wallet_route of the wallet whose partition applies the command: the
    # database takes it modulo the partition count it holds (db.partitioning).
    route: int
    user_id: str
    asset_id: int | None  # None: a freeze or unfreeze (a player, every asset)
    amount: int | None = None
    to_user_id: str | None = None
    reference_id: uuid.UUID | None = None
    metadata: dict[str, Any] | None = None
    reason: str | None = None
    item_id: str | None = None
    callback_url: str | None = None
    expires_in: int | None = None
    request_id: str | None = None
    # An instant given as such (an expiry's lot), instead of `expires_in`.
    expires_at: datetime | None = None
    id: uuid.UUID = field(default_factory=uuid7)


@dataclass(slots=True, init=False)
class StoredTransaction:
    """A row of `transactions` as the intake knows it right after inserting it, without
    reading it back: what the database chose (seq, partition, created_at, expires_at),
    and the command for everything else. Reads like a row of the table.

    Built once per accepted command: its own __init__ copies the command's fields with
    plain assignments (a generated one with 27 keyword arguments cost about 13 ms per
    1000-command batch)."""

    id: uuid.UUID
    seq: int
    ledger_id: int
    client_id: uuid.UUID
    idempotency_key: str
    fingerprint: str
    type: str
    status: TransactionStatus
    partition: int
    user_id: str
    to_user_id: str | None
    asset_id: int | None  # None: a freeze or unfreeze
    amount: int | None
    reference_id: uuid.UUID | None
    metadata: dict[str, Any] | None
    reason: str | None
    item_id: str | None
    callback_url: str | None
    expires_at: datetime | None
    created_at: datetime
    request_id: str | None
    hold_status: str | None
    reversed_by: uuid.UUID | None
    error_code: str | None
    error_message: str | None
    balance_after: int | None
    completed_at: datetime | None

    def __init__(self, command: NewCommand, returned: Row[Any]) -> None:
        self.id = command.id
        self.seq = returned.seq
        self.ledger_id = command.ledger_id
        self.client_id = command.client_id
        self.idempotency_key = command.idempotency_key
        self.fingerprint = command.fingerprint
        self.type = command.type
        self.status = TransactionStatus.PENDING
        self.partition = returned.partition
        self.user_id = command.user_id
        self.to_user_id = command.to_user_id
        self.asset_id = command.asset_id
        self.amount = command.amount
        self.reference_id = command.reference_id
        self.metadata = command.metadata
        self.reason = command.reason
        self.item_id = command.item_id
        self.callback_url = command.callback_url
        self.expires_at = returned.expires_at
        self.created_at = returned.created_at
        self.request_id = command.request_id
        self.hold_status = self.reversed_by = self.error_code = self.error_message = None
        self.balance_after = self.completed_at = None


@dataclass(frozen=True)
class Recorded:
    """The stored transaction for a command, and whether this call created it."""

    row: TransactionRow
    created: bool

    @property
    def replayed(self) -> bool:
        return not self.created


def fingerprint(kind: str, fields: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical request: its type and fields, key order and spacing aside.

    A single request and a batch item with the same type and fields have the same
    fingerprint, so either may replay the other.
    """
    canonical = json.dumps(
        {"type": kind, "fields": dict(fields)}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def record(
    conn: Connection, commands: Sequence[NewCommand], ordered: bool = True
) -> list[Recorded]:
    """Insert commands as pending; a (client, key) already stored is returned instead.

    ON CONFLICT DO NOTHING makes the unique constraint the judge: of two identical
    requests racing, one inserts and the other waits for it, then finds its row. One
    statement for any number of commands, its text fixed (nothing to compile per call).

    Rows are inserted sorted by key, so that two statements sharing keys lock them in
    the same order and cannot deadlock. `ordered` (a batch request) keeps acceptance
    order = the given order anyway, by taking the sequence numbers first; commands of
    concurrent requests (group commit) have no order among themselves to keep.
    """
    seqs: list[int | None] = [None] * len(commands)
    order = sorted(
        range(len(commands)),
        key=lambda i: (
            commands[i].ledger_id,
            str(commands[i].client_id),
            commands[i].idempotency_key,
        ),
    )
    if ordered and len(commands) > 1:
        seqs = list(
            conn.execute(
                text(
                    "SELECT nextval(pg_get_serial_sequence('transactions', 'seq')) "
                    "FROM generate_series(1, :n) ORDER BY 1"
                ),
                {"n": len(commands)},
            ).scalars()
        )
    rows = [commands[i] for i in order]
    params = {
        "id": [c.id for c in rows],
        "seq": [seqs[i] for i in order],
        "ledger": [c.ledger_id for c in rows],
        "client": [c.client_id for c in rows],
        "key": [c.idempotency_key for c in rows],
        "fingerprint": [c.fingerprint for c in rows],
        "type": [c.type for c in rows],
        "route": [c.route for c in rows],
        "configured": settings.load().partitions,
        "user": [c.user_id for c in rows],
        "to_user": [c.to_user_id for c in rows],
        "asset": [c.asset_id for c in rows],
        "amount": [c.amount for c in rows],
        "ref": [c.reference_id for c in rows],
        "metadata": [None if c.metadata is None else json.dumps(c.metadata) for c in rows],
        "reason": [c.reason for c in rows],
        "item": [c.item_id for c in rows],
        "callback": [c.callback_url for c in rows],
        "expires_in": [c.expires_in for c in rows],
        "expires_at": [c.expires_at for c in rows],
        "request_id": [c.request_id for c in rows],
    }
    by_id = {c.id: c for c in rows}
    inserted = {row.id: _pending_row(by_id[row.id], row) for row in conn.execute(INSERT, params)}
    missing = [c for c in commands if c.id not in inserted]
    existing = _existing(conn, missing) if missing else {}
    results = []
    for command in commands:
        if command.id in inserted:
            results.append(Recorded(inserted[command.id], created=True))
        else:
            key = (command.ledger_id, command.client_id, command.idempotency_key)
            results.append(Recorded(existing[key], False))
    return results


INSERT = text(
    f"""
    SELECT pg_advisory_xact_lock_shared({INTAKE_LOCK_NAMESPACE}, 0);
    INSERT INTO transactions (id, seq, ledger_id, client_id, idempotency_key, fingerprint,
        type, status, partition, user_id, to_user_id, asset_id, amount, reference_id,
        metadata, reason, item_id, callback_url, expires_at, request_id)
    SELECT c.id, coalesce(c.seq, nextval(pg_get_serial_sequence('transactions', 'seq'))),
        c.ledger, c.client, c.key, c.fingerprint, c.type, 'pending',
        CAST(c.route % n.partitions AS smallint), c.usr, c.to_user,
        c.asset, c.amount, c.ref, CAST(c.metadata AS jsonb), c.reason, c.item, c.callback,
        -- the database's clock, like created_at: a hold's life is measured on one clock
        coalesce(c.expires_at, now() + make_interval(secs => c.expires_in)), c.request_id
    FROM unnest(CAST(:id AS uuid[]), CAST(:seq AS bigint[]), CAST(:ledger AS int[]),
        CAST(:client AS uuid[]),
        CAST(:key AS text[]), CAST(:fingerprint AS text[]), CAST(:type AS text[]),
        CAST(:route AS bigint[]), CAST(:user AS text[]), CAST(:to_user AS text[]),
        CAST(:asset AS int[]), CAST(:amount AS bigint[]), CAST(:ref AS uuid[]),
        CAST(:metadata AS text[]), CAST(:reason AS text[]), CAST(:item AS text[]),
        CAST(:callback AS text[]), CAST(:expires_in AS int[]), CAST(:request_id AS text[]),
        CAST(:expires_at AS timestamptz[]))
        AS c(id, seq, ledger, client, key, fingerprint, type, route, usr, to_user, asset,
             amount, ref, metadata, reason, item, callback, expires_in, request_id,
             expires_at)
    -- The count in force, read after the intake lock above was granted (a statement of
    -- its own, so its snapshot is later): a repartition that holds the lock alone has
    -- either committed before this reads, or waits until this commits.
    CROSS JOIN (SELECT coalesce((SELECT partitions FROM wallet_partitioning),
        CAST(:configured AS smallint)) AS partitions) AS n
    ON CONFLICT ON CONSTRAINT transactions_ledger_client_key_key DO NOTHING
    RETURNING id, seq, partition, created_at, expires_at
    """
)


def _pending_row(command: NewCommand, returned: Row[Any]) -> StoredTransaction:
    return StoredTransaction(command, returned)


def _existing(
    conn: Connection, commands: Sequence[NewCommand]
) -> dict[tuple[int, uuid.UUID, str], Row[Any]]:
    rows = conn.execute(
        text(
            "SELECT t.* FROM transactions t "
            "JOIN unnest(CAST(:ledgers AS int[]), CAST(:clients AS uuid[]), "
            "CAST(:keys AS text[])) AS k(ledger_id, client_id, key) "
            "ON t.ledger_id = k.ledger_id AND t.client_id = k.client_id "
            "AND t.idempotency_key = k.key"
        ),
        {
            "ledgers": [c.ledger_id for c in commands],
            "clients": [str(c.client_id) for c in commands],
            "keys": [c.idempotency_key for c in commands],
        },
    ).all()
    return {(row.ledger_id, row.client_id, row.idempotency_key): row for row in rows}
