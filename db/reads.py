"""What the API shows: transactions as resources, wallets, and wallet history pages."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Union

from sqlalchemy import Connection, Row, text

from db.assets import catalog
from db.controls import lots_of
from ledger import Entry, TransactionStatus, expiring

if TYPE_CHECKING:
    from db.intake import StoredTransaction


# A row of `transactions` as read, or as db.intake has just inserted it.
TransactionRow = Union[Row[Any], "StoredTransaction"]

TRANSACTION_COLUMNS = (
    "t.id, t.seq, t.client_id, t.type, t.status, t.user_id, t.to_user_id, t.asset_id, "
    "t.amount, t.idempotency_key, t.metadata, t.error_code, t.error_message, "
    "t.balance_after, t.reference_id, t.expires_at, t.hold_status, t.reversed_by, t.reason, "
    "t.item_id, t.callback_url, t.created_at, t.completed_at"
)


def transaction(conn: Connection, ledger_id: int, tx_id: uuid.UUID) -> dict[str, Any] | None:
    """A transaction of the ledger; one of another ledger does not exist here."""
    rows = conn.execute(
        text(
            f"SELECT {TRANSACTION_COLUMNS} FROM transactions t "
            "WHERE t.ledger_id = :ledger AND t.id = :id"
        ),
        {"ledger": ledger_id, "id": tx_id},
    ).all()
    found = resources(conn, rows)
    return found[0] if found else None


def transaction_by_key(
    conn: Connection, ledger_id: int, client_id: uuid.UUID, idempotency_key: str
) -> dict[str, Any] | None:
    rows = conn.execute(
        text(
            f"SELECT {TRANSACTION_COLUMNS} FROM transactions t WHERE t.ledger_id = :ledger "
            "AND t.client_id = :client AND t.idempotency_key = :key"
        ),
        {"ledger": ledger_id, "client": client_id, "key": idempotency_key},
    ).all()
    found = resources(conn, rows)
    return found[0] if found else None


def transactions(conn: Connection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    rows = conn.execute(
        text(f"SELECT {TRANSACTION_COLUMNS} FROM transactions t WHERE t.id = ANY(:ids)"),
        {"ids": list(ids)},
    ).all()
    return {uuid.UUID(r["id"]): r for r in resources(conn, rows)}


def wallet(conn: Connection, ledger_id: int, owner: str) -> list[dict[str, Any]]:
    """One balance per asset of the ledger; a system account's shards are summed.
    Empty: no wallet."""
    rows = conn.execute(
        text(
            # A user wallet is one row: its lots are that row's (a system account has
            # none). Lots of an asset whose lifetime was removed are not shown.
            "SELECT a.asset_id, sum(a.balance) AS balance, sum(a.held) AS held, "
            "max(a.updated_at) AS updated_at, "
            "bool_or(s.credit_lifetime_s IS NOT NULL) AS expires, "
            "CAST(max(CAST(a.lots AS text)) FILTER (WHERE s.credit_lifetime_s IS NOT NULL) "
            "AS jsonb) AS lots FROM accounts a JOIN assets s ON s.id = a.asset_id "
            "WHERE a.ledger_id = :ledger AND a.owner = :owner GROUP BY a.asset_id"
        ),
        {"ledger": ledger_id, "owner": owner},
    ).all()
    balances = []
    for r in rows:
        balance = {
            "asset": catalog.by_id(r.asset_id).code,
            "balance": int(r.balance),
            "held": int(r.held),
            "available": int(r.balance) - int(r.held),
            "updated_at": iso(r.updated_at),
        }
        if r.expires:  # only an asset with a credit lifetime has credits to list
            # NULL lots: credited before the lifetime, never expires; nothing to list.
            balance["expiring"] = [
                {"amount": lot.amount, "expires_at": iso(lot.expires_at)}
                for lot in expiring(lots_of(r.lots, 0))
            ]
        balances.append(balance)
    return sorted(balances, key=lambda b: b["asset"])


BALANCES_AT = (
    "SELECT a.asset_id, a.balance - coalesce((SELECT sum(e.amount) "
    "FROM ledger_entries e WHERE e.account_id = a.id AND e.created_at > :at), 0) "
    "AS balance FROM accounts a "
    "WHERE a.ledger_id = :ledger AND a.owner = :owner AND a.shard = 0"
)


def balances_at(
    conn: Connection, ledger_id: int, user_id: str, at: datetime
) -> list[dict[str, Any]]:
    """A player's posted balance per asset as it stood at instant `at`: every entry
    applied at or before it. Empty: no wallet.

    Each wallet's cached balance minus its entries applied after `at`, in one statement
    (one snapshot): one range scan of ledger_entries_by_account_time per wallet, as long
    as the wallet's history since `at`. A wallet that did not exist yet shows 0.
    """
    rows = conn.execute(text(BALANCES_AT), {"ledger": ledger_id, "owner": user_id, "at": at}).all()
    balances = [{"asset": catalog.by_id(r.asset_id).code, "balance": int(r.balance)} for r in rows]
    return sorted(balances, key=lambda b: b["asset"])


# The largest statement window the API answers: more entries than this is 422, narrow
# the window. Bounds the memory and the time of one request.
STATEMENT_MAX_ENTRIES = 10_000


def statement_sql(from_start: bool) -> str:
    """statement_entries' one statement, for the wallet :account: a first row (kind 0)
    with the opening balance, then at most :n entries of [:start, :end) (kind 1)."""
    since = "AND e.created_at >= :start " if from_start else ""
    opening = (
        "a.balance - coalesce((SELECT sum(e.amount) FROM ledger_entries e "
        f"WHERE e.account_id = a.id {since}), 0)"
        if from_start
        else "0"
    )
    return (
        f"SELECT 0 AS kind, NULL AS transaction_id, NULL AS type, {opening} AS amount, "
        "NULL AS at, NULL AS id FROM accounts a WHERE a.id = :account "
        "UNION ALL SELECT 1, w.transaction_id, t.type, w.amount, w.created_at, w.id "
        "FROM (SELECT e.id, e.transaction_id, e.amount, e.created_at FROM ledger_entries e "
        f"WHERE e.account_id = :account {since}AND e.created_at < :end "
        "ORDER BY e.created_at, e.id LIMIT :n) w JOIN transactions t ON t.id = w.transaction_id"
    )


def statement_entries(
    conn: Connection,
    ledger_id: int,
    user_id: str,
    asset_id: int,
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> tuple[int, list[Entry], datetime] | None:
    """A player's wallet of one asset over [start, end): the balance before `start`
    (0 from the beginning), at most `limit` of the window's entries in time order, and
    the window's end (no `end`: the database's now). None: no such wallet.

    The wallet's id first (it never changes), then one statement, so the opening
    balance and the entries are of one snapshot. The opening balance is the cached
    balance minus the entries from `start` on (one range scan; statements are mostly
    of recent windows), the window one range scan of ledger_entries_by_account_time in
    its order, stopping after `limit`, cut before its entries are joined to their
    transactions. The id is a value, not a sub-select or a join: the planner then sizes
    the scan by that account's statistics (a sub-select's unknown id is planned as the
    average account, a handful of entries, and a bitmap scan and a sort of the whole
    window looks cheaper; see system_history_statement).
    """
    found = conn.execute(
        text(
            "SELECT id, clock_timestamp() AS now FROM accounts WHERE ledger_id = :ledger "
            "AND owner = :owner AND asset_id = :asset AND shard = 0"
        ),
        {"ledger": ledger_id, "owner": user_id, "asset": asset_id},
    ).first()
    if found is None:
        return None
    # No end: now by the database's clock, the one the instants are taken by.
    end = end or found.now
    rows = conn.execute(
        text(statement_sql(start is not None)),
        {"account": found.id, "start": start, "end": end, "n": limit},
    ).all()
    head = [r for r in rows if r.kind == 0]
    if not head:
        return None
    lines = sorted((r for r in rows if r.kind == 1), key=lambda r: (r.at, r.id))
    entries = [Entry(r.at, int(r.amount), str(r.transaction_id), r.type) for r in lines]
    return int(head[0].amount), entries, end


def wallet_history(
    conn: Connection,
    ledger_id: int,
    user_id: str,
    asset_id: int | None,
    limit: int,
    before_seq: int | None,
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the user's transactions, newest first, and the cursor of the next page.

    Two index range scans (as payer or subject, and as payee) merged, so a page costs
    the same whatever the length of the history.
    """
    where = "AND t.seq < :before " if before_seq is not None else ""
    where += "AND t.asset_id = :asset " if asset_id is not None else ""
    rows = conn.execute(
        text(
            f"(SELECT {TRANSACTION_COLUMNS} FROM transactions t "
            f"WHERE t.ledger_id = :ledger AND t.user_id = :user {where}"
            "ORDER BY t.seq DESC LIMIT :n) UNION "
            f"(SELECT {TRANSACTION_COLUMNS} FROM transactions t "
            f"WHERE t.ledger_id = :ledger AND t.to_user_id = :user {where}"
            "ORDER BY t.seq DESC LIMIT :n) ORDER BY seq DESC LIMIT :n"
        ),
        {
            "ledger": ledger_id,
            "user": user_id,
            "before": before_seq,
            "asset": asset_id,
            "n": limit + 1,
        },
    ).all()
    next_seq = rows[limit - 1].seq if len(rows) > limit else None
    return resources(conn, rows[:limit]), next_seq


NO_ENTRY_YET = 2**63 - 1  # above every entry id: the first page


def system_history_statement(shards: int) -> str:
    """The newest entries of `shards` accounts (:a0, :a1, ...) below :before, at most :n,
    with their transactions, newest first.

    One backward range scan of ledger_entries_by_account per shard, each stopping after
    :n entries, merged and cut to :n: a page costs the same after millions of entries.
    Each shard is its own subquery with its own id, not a join against accounts: the
    planner then sizes each scan by that shard's statistics. Joined, it would plan for
    the average account, which has a handful of entries, and a plan for a handful (a
    bitmap scan and a sort) reads every entry of a shard that has millions.
    """
    scans = " UNION ALL ".join(
        f"(SELECT e.id, e.transaction_id FROM ledger_entries e WHERE e.account_id = :a{i} "
        "AND e.id < :before ORDER BY e.id DESC LIMIT :n)"
        for i in range(shards)
    )
    return (
        f"SELECT {TRANSACTION_COLUMNS}, p.id AS entry_id FROM ("
        f"SELECT s.id, s.transaction_id FROM ({scans}) s ORDER BY s.id DESC LIMIT :n"
        ") p JOIN transactions t ON t.id = p.transaction_id ORDER BY p.id DESC"
    )


def system_shards(conn: Connection, ledger_id: int, owner: str, asset_id: int | None) -> list[int]:
    """The account ids of a system account's shards (of one asset, or all) in a ledger."""
    where = "AND asset_id = :asset " if asset_id is not None else ""
    return list(
        conn.execute(
            text(
                "SELECT id FROM accounts WHERE ledger_id = :ledger AND owner = :owner "
                f"{where}ORDER BY id"
            ),
            {"ledger": ledger_id, "owner": owner, "asset": asset_id},
        ).scalars()
    )


def system_history(
    conn: Connection,
    ledger_id: int,
    owner: str,
    asset_id: int | None,
    limit: int,
    before_entry: int | None,
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the transactions that posted to a system account, newest entry first,
    and the entry id that starts the next page.

    A transaction posts to one shard of a system account at most (one partition's drain
    applies it and writes that partition's shard), so each entry is one transaction.
    """
    shards = system_shards(conn, ledger_id, owner, asset_id)
    if not shards:
        return [], None
    params: dict[str, Any] = {f"a{i}": shard for i, shard in enumerate(shards)}
    params.update(before=NO_ENTRY_YET if before_entry is None else before_entry, n=limit + 1)
    rows = conn.execute(text(system_history_statement(len(shards))), params).all()
    next_entry = rows[limit - 1].entry_id if len(rows) > limit else None
    return resources(conn, rows[:limit]), next_entry


def is_known(conn: Connection, ledger_id: int, owner: str) -> bool:
    """The owner has a wallet in the ledger, or is the subject or payee of one of its
    transactions (its first top-up may still be pending): whom a history may be asked of."""
    return bool(
        conn.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM accounts WHERE ledger_id = :ledger "
                "AND owner = :owner) "
                "OR EXISTS (SELECT 1 FROM transactions WHERE ledger_id = :ledger "
                "AND user_id = :owner) "
                "OR EXISTS (SELECT 1 FROM transactions WHERE ledger_id = :ledger "
                "AND to_user_id = :owner)"
            ),
            {"ledger": ledger_id, "owner": owner},
        ).scalar_one()
    )


def resources(conn: Connection, rows: Sequence[Row[Any]]) -> list[dict[str, Any]]:
    """Transaction rows as API resources, with their ledger entries."""
    entries: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    completed = [r.id for r in rows if r.status == TransactionStatus.COMPLETED]
    if completed:
        for e in conn.execute(
            text(
                "SELECT e.transaction_id, a.owner, e.amount FROM ledger_entries e "
                "JOIN accounts a ON a.id = e.account_id "
                "WHERE e.transaction_id = ANY(:ids) ORDER BY e.id"
            ),
            {"ids": completed},
        ):
            entries[e.transaction_id].append(
                {
                    "account": e.owner,
                    "direction": "credit" if e.amount > 0 else "debit",
                    "amount": abs(e.amount),
                }
            )
    return [resource(r, entries.get(r.id, [])) for r in rows]


def resource(row: TransactionRow, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """One transaction as the API shows it; type-specific fields only where they apply."""
    body: dict[str, Any] = {
        "id": str(row.id),
        "type": row.type,
        "status": row.status,
        "user_id": row.user_id,
        # A freeze or unfreeze has no asset: it concerns the player in every asset.
        "asset": None if row.asset_id is None else catalog.by_id(row.asset_id).code,
        "amount": row.amount,
        "idempotency_key": row.idempotency_key,
        "metadata": row.metadata,
        "error": {"code": row.error_code, "message": row.error_message} if row.error_code else None,
        "balance_after": row.balance_after,
        "entries": entries,
        "created_at": iso(row.created_at),
        "completed_at": iso(row.completed_at),
    }
    if row.type == "transfer":
        body["to_user_id"] = row.to_user_id
    if row.type in ("hold", "expiry"):
        body["expires_at"] = iso(row.expires_at)
        body["hold_status"] = row.hold_status
    if row.type in ("capture", "release"):
        body["hold_id"] = str(row.reference_id)
    if row.type == "reverse":
        body["reverses"] = str(row.reference_id)
    if row.reversed_by is not None:
        body["reversed_by"] = str(row.reversed_by)
    if row.reason is not None:
        body["reason"] = row.reason
    if row.item_id is not None:
        body["item_id"] = row.item_id
    if row.callback_url is not None:
        body["callback_url"] = row.callback_url
    return body


def iso(moment: datetime | None) -> str | None:
    """RFC 3339 in UTC to the microsecond, the database's resolution:
    2026-11-20T10:00:00.012345Z. Exact, so any instant shown (a transaction's
    completed_at, a statement entry's) can be asked back with `?at=`."""
    return None if moment is None else iso_exact(moment)


def iso_exact(moment: datetime) -> str:
    """iso() of an instant that is never None."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"
