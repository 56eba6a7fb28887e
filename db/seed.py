"""The seed: assets, the bootstrap client, system accounts, and two demo players.

`python -m db.seed` is idempotent. Alice's and Bob's opening balances are real ledger
transactions from @treasury: top-ups recorded like any other command (with fixed
idempotency keys, so a second seed adds nothing) and applied by the workers.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, text

import logs
import settings
from db import intake
from db.assets import SEEDED_ASSETS
from db.clients import BOOTSTRAP_CLIENT_ID, ensure_bootstrap_client
from db.engine import connect
from db.partitioning import ensure
from ledger import DEFAULT_LEDGER_ID, SYSTEM_ACCOUNTS, wallet_route

log = logging.getLogger(__name__)

OPENING_BALANCES = {
    "alice": {"GOLD_COINS": 1000, "DIAMONDS": 50, "LOYALTY_POINTS": 200},
    "bob": {"GOLD_COINS": 500, "DIAMONDS": 20},
}


def seed(conn: Connection, partitions: int) -> list[intake.Recorded]:
    """Create what a fresh service needs; returns the opening top-ups (new or replayed)."""
    for code, name in SEEDED_ASSETS:
        conn.execute(
            text(
                "INSERT INTO assets (ledger_id, code, name) VALUES (:l, :c, :n) "
                "ON CONFLICT (ledger_id, code) DO NOTHING"
            ),
            {"l": DEFAULT_LEDGER_ID, "c": code, "n": name},
        )
    ensure_bootstrap_client(conn)
    # The first seed stores the count; from then on the database's count is in force
    # (`python -m stack repartition N` changes it) and shards cover it.
    partitions = ensure(conn, partitions)
    conn.execute(
        text(
            "INSERT INTO accounts (ledger_id, owner, asset_id, shard) "
            "SELECT a.ledger_id, o.owner, a.id, s.shard "
            "FROM unnest(CAST(:owners AS text[])) AS o(owner) "
            "CROSS JOIN assets a CROSS JOIN generate_series(0, :last) AS s(shard) "
            "WHERE a.ledger_id = :l "
            "ON CONFLICT (ledger_id, owner, asset_id, shard) DO NOTHING"
        ),
        {"owners": list(SYSTEM_ACCOUNTS), "last": partitions - 1, "l": DEFAULT_LEDGER_ID},
    )
    asset_ids = {
        code: id_
        for code, id_ in conn.execute(
            text("SELECT code, id FROM assets WHERE ledger_id = :l"), {"l": DEFAULT_LEDGER_ID}
        )
    }
    commands = []
    for user_id, balances in OPENING_BALANCES.items():
        for code, amount in balances.items():
            fields = {"user_id": user_id, "asset": code, "amount": amount}
            commands.append(
                intake.NewCommand(
                    ledger_id=DEFAULT_LEDGER_ID,
                    client_id=BOOTSTRAP_CLIENT_ID,
                    idempotency_key=f"seed:opening:{user_id}:{code}",
                    fingerprint=intake.fingerprint("topup", fields),
                    type="topup",
                    route=wallet_route(user_id),
                    user_id=user_id,
                    asset_id=asset_ids[code],
                    amount=amount,
                    metadata={"seed": "opening balance"},
                )
            )
    return intake.record(conn, commands)


def main() -> None:
    logs.configure("seed")
    with connect() as conn:
        recorded = seed(conn, settings.load().partitions)
    created = sum(r.created for r in recorded)
    log.info("seed: assets, system accounts, demo users alice and bob (%d new top-ups)", created)


if __name__ == "__main__":
    main()
