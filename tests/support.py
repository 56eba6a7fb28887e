"""Shared test helpers: ledger invariants and unique names."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text

from db.engine import connect
from db.reconciliation import reconcile


def unique(prefix: str = "player") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def assert_ledger_invariants() -> dict[int, dict[str, Any]]:
    """In every ledger: every transaction balances, every asset sums to zero, every
    cache matches its entries. Returns each ledger's report, by ledger id."""
    with connect() as conn:
        ledger_ids = list(conn.execute(text("SELECT id FROM ledgers ORDER BY id")).scalars())
    reports = {}
    for ledger_id in ledger_ids:
        report = reports[ledger_id] = reconcile(ledger_id)
        assert report["unbalanced_transactions"] == [], report
        for asset in report["assets"]:
            assert asset["sum_of_balances"] == 0, asset
            assert asset["mismatches"] == [], asset
        assert report["ok"] is True
    return reports
