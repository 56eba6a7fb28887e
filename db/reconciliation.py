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
    controls = _controls(conn, ledger_id)
    ok = (
        not unbalanced
        and all(a["sum_of_balances"] == 0 and not a["mismatches"] for a in assets)
        and not controls["lots_mismatches"]
        and not controls["spend_window_mismatches"]
    )
    code = conn.execute(text("SELECT code FROM ledgers WHERE id = :l"), {"l": ledger_id}).scalar()
    return {
        "ok": ok,
        "ledger": code,
        "unbalanced_transactions": unbalanced,
        "assets": assets,
        **controls,
    }


def _controls(conn: Connection, ledger_id: int) -> dict[str, list[dict[str, Any]]]:
    """The controls' part of the report (the sums above already cover @expired):

    - `wallets_above_cap`: balances above their asset's max_balance. Not an error (a
      cap lowered below a balance only stops credits), so `ok` does not depend on it.
    - `lots_mismatches`: wallets whose free lots do not sum to their available balance,
      and active holds whose lots do not sum to their amount.
    - `spend_window_mismatches`: wallets whose stored debits of the last 24 hours come
      to more than the ledger's completed spends, captures and transfers out of them in
      that window (fewer is fine: debits from before the limit was set are not kept).
    """
    above = [
        {
            "account": r.owner,
            "asset": catalog.by_id(r.asset_id).code,
            "balance": int(r.balance),
            "max_balance": int(r.max_balance),
        }
        for r in conn.execute(
            text(
                "SELECT a.owner, a.asset_id, a.balance, s.max_balance FROM accounts a "
                "JOIN assets s ON s.id = a.asset_id WHERE a.ledger_id = :ledger "
                "AND s.max_balance IS NOT NULL AND a.owner NOT LIKE '@%' "
                "AND a.balance > s.max_balance ORDER BY a.id LIMIT 1000"
            ),
            {"ledger": ledger_id},
        )
    ]
    lots = [
        {
            "account": r.owner,
            "asset": catalog.by_id(r.asset_id).code,
            "hold_id": r.hold_id,
            "lots_total": int(r.lots_total),
            "expected": int(r.expected),
        }
        for r in conn.execute(
            text(
                "SELECT owner, asset_id, NULL AS hold_id, wallet_lots_total(lots) AS lots_total, "
                "balance - held AS expected FROM accounts WHERE ledger_id = :ledger "
                "AND lots IS NOT NULL AND wallet_lots_total(lots) <> balance - held "
                "UNION ALL "
                "SELECT user_id, asset_id, CAST(id AS text), wallet_lots_total(lots), amount "
                "FROM transactions WHERE ledger_id = :ledger AND hold_status = 'active' "
                "AND lots IS NOT NULL AND wallet_lots_total(lots) <> amount LIMIT 1000"
            ),
            {"ledger": ledger_id},
        )
    ]
    window = [
        {
            "account": r.owner,
            "asset": catalog.by_id(r.asset_id).code,
            "stored": int(r.stored),
            "ledger": int(r.ledger),
        }
        for r in conn.execute(
            text(
                "SELECT a.owner, a.asset_id, d.stored, coalesce(l.total, 0) AS ledger "
                "FROM accounts a "
                "CROSS JOIN LATERAL (SELECT coalesce(sum(CAST(x ->> 'amount' AS numeric)), 0) "
                "  AS stored FROM jsonb_array_elements(a.recent_debits) x "
                "  WHERE CAST(x ->> 'accepted_at' AS timestamptz) > now() - interval '24 hours'"
                ") d "
                "LEFT JOIN LATERAL (SELECT sum(t.amount) AS total FROM transactions t "
                "  WHERE t.ledger_id = a.ledger_id AND t.user_id = a.owner "
                "  AND t.asset_id = a.asset_id AND t.status = 'completed' "
                "  AND t.type IN ('spend', 'capture', 'transfer') "
                "  AND t.created_at > now() - interval '24 hours') l ON true "
                "WHERE a.ledger_id = :ledger AND a.recent_debits IS NOT NULL "
                "AND d.stored > coalesce(l.total, 0) LIMIT 1000"
            ),
            {"ledger": ledger_id},
        )
    ]
    return {"wallets_above_cap": above, "lots_mismatches": lots, "spend_window_mismatches": window}


def _mismatch(row: Any, field: str, cached: int, expected: int) -> dict[str, Any]:
    return {
        "account": row.owner,
        "shard": row.shard,
        "field": field,
        "cached": int(cached),
        "expected": int(expected),
    }
