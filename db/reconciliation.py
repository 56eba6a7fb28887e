"""The reconciliation report: every cached balance against the ledger's entries."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from db.assets import catalog
from db.engine import get_engine


def reconcile(ledger_id: int) -> dict[str, Any]:
    """The report of one ledger, read from one consistent snapshot of it."""
    with get_engine().connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            conn.execute(text("SET TRANSACTION READ ONLY"))
            return report(conn, ledger_id)


def report(conn: Connection, ledger_id: int) -> dict[str, Any]:
    """Compare each account's cached balance (and held) with what the ledger implies.

    ok means: no account differs from the sum of its entries, no wallet's `held` differs
    from its active holds, every asset's balances sum to zero, and no transaction's
    entries fail to sum to zero.
    """
    mismatches: dict[int, list[dict[str, Any]]] = {}
    for row in conn.execute(
        text(
            "SELECT a.owner, a.shard, a.asset_id, a.balance, a.held, "
            "coalesce(e.total, 0) AS entries_total, coalesce(h.total, 0) AS holds_total "
            "FROM accounts a "
            "LEFT JOIN (SELECT le.account_id, sum(le.amount) AS total FROM ledger_entries le "
            "           JOIN accounts la ON la.id = le.account_id AND la.ledger_id = :ledger "
            "           GROUP BY le.account_id) e ON e.account_id = a.id "
            "LEFT JOIN (SELECT user_id, asset_id, sum(amount) AS total FROM transactions "
            "           WHERE hold_status = 'active' AND ledger_id = :ledger "
            "           GROUP BY user_id, asset_id) h "
            "       ON h.user_id = a.owner AND h.asset_id = a.asset_id AND a.shard = 0 "
            "WHERE a.ledger_id = :ledger "
            "AND (a.balance <> coalesce(e.total, 0) OR a.held <> coalesce(h.total, 0))"
        ),
        {"ledger": ledger_id},
    ):
        found = mismatches.setdefault(row.asset_id, [])
        if row.balance != row.entries_total:
            found.append(_mismatch(row, "balance", row.balance, row.entries_total))
        if row.held != row.holds_total:
            found.append(_mismatch(row, "held", row.held, row.holds_total))
    assets = []
    for row in conn.execute(
        text(
            "SELECT asset_id, sum(balance) AS total, count(*) AS n FROM accounts "
            "WHERE ledger_id = :ledger GROUP BY asset_id ORDER BY asset_id"
        ),
        {"ledger": ledger_id},
    ):
        assets.append(
            {
                "asset": catalog.by_id(row.asset_id).code,
                "sum_of_balances": int(row.total),
                "accounts_checked": row.n,
                "mismatches": mismatches.get(row.asset_id, []),
            }
        )
    unbalanced = [
        str(r.transaction_id)
        for r in conn.execute(
            text(
                "SELECT e.transaction_id FROM ledger_entries e "
                "JOIN accounts a ON a.id = e.account_id WHERE a.ledger_id = :ledger "
                "GROUP BY e.transaction_id HAVING sum(e.amount) <> 0 LIMIT 100"
            ),
            {"ledger": ledger_id},
        )
    ]
    ok = not unbalanced and all(a["sum_of_balances"] == 0 and not a["mismatches"] for a in assets)
    code = conn.execute(text("SELECT code FROM ledgers WHERE id = :l"), {"l": ledger_id}).scalar()
    return {"ok": ok, "ledger": code, "unbalanced_transactions": unbalanced, "assets": assets}


def _mismatch(row: Any, field: str, cached: int, expected: int) -> dict[str, Any]:
    return {
        "account": row.owner,
        "shard": row.shard,
        "field": field,
        "cached": int(cached),
        "expected": int(expected),
    }
