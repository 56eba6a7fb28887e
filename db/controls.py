"""The controls in the database: asset rules, lots and debits as JSON, freezes, and
the expiry sweeper's look-up (docs/controls.md, "What the database stores")."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, text

from ledger import AssetRules, Debit, Lot, unexpiring

RULE_COLUMNS = ("max_balance", "spend_limit_24h", "credit_lifetime_s")


def rules_of(max_balance: int | None, spend_limit: int | None, lifetime: int | None) -> AssetRules:
    return AssetRules(max_balance, spend_limit, lifetime)


def has_rules(rules: AssetRules) -> bool:
    return rules != AssetRules()


# --- Lots and debits as JSON ---------------------------------------------------------
# Instants keep their microseconds: an expiry names its lot by the exact instant.


def lots_json(lots: Iterable[Lot]) -> str:
    return json.dumps(
        [
            {
                "amount": lot.amount,
                "expires_at": None if lot.expires_at is None else lot.expires_at.isoformat(),
            }
            for lot in lots
        ]
    )


def lots_of(stored: list[dict[str, Any]] | None, amount: int) -> tuple[Lot, ...]:
    """Stored lots; NULL means the amount predates the asset's lifetime: one lot that
    never expires (controls.unexpiring)."""
    if stored is None:
        return unexpiring(amount)
    return tuple(
        Lot(
            int(item["amount"]),
            None if item["expires_at"] is None else datetime.fromisoformat(item["expires_at"]),
        )
        for item in stored
    )


def soonest(lots: Iterable[Lot]) -> datetime | None:
    """The soonest dated lot's instant: the sweeper's index key."""
    return min((lot.expires_at for lot in lots if lot.expires_at is not None), default=None)


def debits_json(debits: Iterable[Debit]) -> str:
    return json.dumps(
        [{"accepted_at": d.accepted_at.isoformat(), "amount": d.amount} for d in debits]
    )


def debits_of(stored: list[dict[str, Any]] | None) -> tuple[Debit, ...]:
    if not stored:
        return ()
    return tuple(
        Debit(datetime.fromisoformat(item["accepted_at"]), int(item["amount"])) for item in stored
    )


# --- Asset settings --------------------------------------------------------------------


@dataclass(frozen=True)
class AssetSettings:
    code: str
    name: str
    max_balance: int | None
    spend_limit_24h: int | None
    credit_lifetime: int | None


def settings_of(conn: Connection, ledger_id: int) -> list[AssetSettings]:
    rows = conn.execute(
        text(
            "SELECT code, name, max_balance, spend_limit_24h, credit_lifetime_s FROM assets "
            "WHERE ledger_id = :l ORDER BY code"
        ),
        {"l": ledger_id},
    ).all()
    return [_settings(r) for r in rows]


def _settings(row: Row[Any]) -> AssetSettings:
    return AssetSettings(
        row.code, row.name, row.max_balance, row.spend_limit_24h, row.credit_lifetime_s
    )


def change_settings(
    conn: Connection, ledger_id: int, code: str, changes: dict[str, int | None]
) -> AssetSettings | None:
    """Set, change or clear (None) some of an asset's rules, in the caller's
    transaction; None when the ledger has no such asset.

    Removing a credit lifetime forgets the lots of the asset's wallets and active
    holds (NULL: every credit of theirs now never expires). The rows are locked in
    ascending id order, the drains' lock order, so this cannot deadlock with a drain; a
    drain that read the old rules and wrote lots after this statement's snapshot is
    cleaned up by the next batch that touches the wallet (db.batch.write).
    """
    columns = {"credit_lifetime": "credit_lifetime_s"}
    assignments = ", ".join(f"{columns.get(k, k)} = :{k}" for k in changes)
    before = conn.execute(
        text(
            "SELECT id, credit_lifetime_s FROM assets WHERE ledger_id = :l AND code = :c "
            "FOR NO KEY UPDATE"
        ),
        {"l": ledger_id, "c": code},
    ).first()
    if before is None:
        return None
    row = conn.execute(
        text(
            f"UPDATE assets SET {assignments} WHERE id = :id "
            "RETURNING code, name, max_balance, spend_limit_24h, credit_lifetime_s"
        )
        if changes
        else text(
            "SELECT code, name, max_balance, spend_limit_24h, credit_lifetime_s FROM assets "
            "WHERE id = :id"
        ),
        {"id": before.id, **changes},
    ).one()
    if before.credit_lifetime_s is not None and row.credit_lifetime_s is None:
        conn.execute(
            text(
                "UPDATE accounts SET lots = NULL, lots_expire_at = NULL WHERE id IN ("
                "  SELECT id FROM accounts WHERE asset_id = :id AND lots IS NOT NULL "
                "  ORDER BY id FOR NO KEY UPDATE); "
                "UPDATE transactions SET lots = NULL WHERE asset_id = :id "
                "AND hold_status = 'active' AND lots IS NOT NULL"
            ),
            {"id": before.id},
        )
    return _settings(row)


# --- Reads -------------------------------------------------------------------------


def frozen(conn: Connection, ledger_id: int, user_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        text("SELECT reason, since FROM frozen_players WHERE ledger_id = :l AND user_id = :u"),
        {"l": ledger_id, "u": user_id},
    ).first()
    return None if row is None else {"reason": row.reason, "since": row.since}


def due_wallets(conn: Connection, limit: int) -> Sequence[Row[Any]]:
    """Wallets with a lot due now (the database's clock, the one acceptance times are
    on), of assets that still have a lifetime, without a pending expiry: what the
    sweeper submits expiries for (accounts_lots_expiring). Each row carries `now`."""
    return conn.execute(
        text(
            "SELECT a.id, a.ledger_id, a.owner, a.asset_id, a.lots, a.balance, a.held, "
            "a.updated_at, now() AS now FROM accounts a JOIN assets s ON s.id = a.asset_id "
            "WHERE a.lots_expire_at <= now() AND s.credit_lifetime_s IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM transactions t WHERE t.ledger_id = a.ledger_id "
            "  AND t.user_id = a.owner AND t.status = 'pending' AND t.type = 'expiry' "
            "  AND t.asset_id = a.asset_id) "
            "ORDER BY a.lots_expire_at LIMIT :n"
        ),
        {"n": limit},
    ).all()
