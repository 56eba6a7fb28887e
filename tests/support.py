"""Shared test helpers: ledger invariants and unique names."""

from __future__ import annotations

import uuid
from typing import Any

from db.reconciliation import reconcile


def unique(prefix: str = "player") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def assert_ledger_invariants() -> dict[str, Any]:
    """Every transaction balances, every asset sums to zero, every cache matches entries."""
    report = reconcile()
    assert report["unbalanced_transactions"] == []
    for asset in report["assets"]:
        assert asset["sum_of_balances"] == 0, asset
        assert asset["mismatches"] == [], asset
    assert report["ok"] is True
    return report
