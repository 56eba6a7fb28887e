"""Migration 0005 moves a live database of the schema before ledgers into `default`,
with nothing lost: every balance, entry, pending command, hold and outbox row, and the
reconciliation clean before and after; the pending commands then apply as before."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from ledger import partition_of
from stack import embedded
from tests.conftest import Servers, _forget_process_state

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = uuid.UUID("00000000-0000-0000-0000-000000000001")

# What the service of revision 0004 wrote for: alice topped up 100 and spent 30, holds
# 20 (active), has a spend of 5 and a capture of 15 of her hold still pending, and her
# top-up has a callback waiting in the outbox. System accounts are sharded by partition.
TOPUP, SPEND, HOLD, PENDING_SPEND, PENDING_CAPTURE = (uuid.uuid4() for _ in range(5))
CALLBACK = uuid.uuid4()
ALICE_PARTITION = partition_of("alice", 8)
OLD_DATA = """
INSERT INTO assets (id, code, name) VALUES (1, 'GOLD_COINS', 'Gold Coins'),
    (2, 'DIAMONDS', 'Diamonds');
INSERT INTO api_clients (id, name, scopes, key_hash, webhook_secret, callback_hosts) VALUES
    (%(bootstrap)s, 'bootstrap', '{submit,read,admin}', NULL, 'whsec_a', '{}'),
    (%(game)s, 'game', '{submit,read}', 'hash-of-game-key', 'whsec_b', '{localhost:9}');
INSERT INTO accounts (id, owner, asset_id, shard, balance, held) VALUES
    (1, '@treasury', 1, 0, -100, 0), (2, '@revenue', 1, %(p)s, 30, 0),
    (3, 'alice', 1, 0, 70, 20), (4, '@treasury', 2, 1, 0, 0);
INSERT INTO transactions (id, client_id, idempotency_key, fingerprint, type, status,
    partition, user_id, asset_id, amount, reference_id, expires_at, hold_status,
    balance_after, callback_url, completed_at) VALUES
    (%(topup)s, %(game)s, 'order-1', 'f1', 'topup', 'completed', %(p)s, 'alice', 1, 100, NULL,
        NULL, NULL, 100, 'http://localhost:9/hook', now()),
    (%(spend)s, %(game)s, 'buy-1', 'f2', 'spend', 'completed', %(p)s, 'alice', 1, 30, NULL,
        NULL, NULL, 70, NULL, now()),
    (%(hold)s, %(game)s, 'hold-1', 'f3', 'hold', 'completed', %(p)s, 'alice', 1, 20, NULL,
        now() + interval '1 hour', 'active', 70, NULL, now()),
    (%(pending_spend)s, %(game)s, 'buy-2', 'f4', 'spend', 'pending', %(p)s, 'alice', 1, 5, NULL,
        NULL, NULL, NULL, NULL, NULL),
    (%(pending_capture)s, %(game)s, 'settle-1', 'f5', 'capture', 'pending', %(p)s, 'alice', 1,
        15, %(hold)s, NULL, NULL, NULL, NULL, NULL);
INSERT INTO ledger_entries (transaction_id, account_id, amount) VALUES
    (%(topup)s, 1, -100), (%(topup)s, 3, 100);
INSERT INTO ledger_entries (transaction_id, account_id, amount) VALUES
    (%(spend)s, 3, -30), (%(spend)s, 2, 30);
INSERT INTO callback_deliveries (id, transaction_id, client_id, url, event, payload) VALUES
    (%(callback)s, %(topup)s, %(game)s, 'http://localhost:9/hook', 'transaction.completed',
     '{"event": "transaction.completed"}');
"""
PARAMS = {
    "bootstrap": str(BOOTSTRAP),
    "game": str(uuid.uuid4()),
    "topup": str(TOPUP),
    "spend": str(SPEND),
    "hold": str(HOLD),
    "pending_spend": str(PENDING_SPEND),
    "pending_capture": str(PENDING_CAPTURE),
    "callback": str(CALLBACK),
    "p": ALICE_PARTITION,
}
# The reconciliation as SQL that any revision can run: balances are their entries, held
# is the active holds, every asset sums to zero. Empty when the books are clean.
RECONCILE = """
SELECT 'balance', a.id FROM accounts a
    LEFT JOIN (SELECT account_id, sum(amount) AS s FROM ledger_entries GROUP BY 1) e
    ON e.account_id = a.id WHERE a.balance <> coalesce(e.s, 0)
UNION ALL SELECT 'held', a.id FROM accounts a
    LEFT JOIN (SELECT user_id, asset_id, sum(amount) AS s FROM transactions
               WHERE hold_status = 'active' GROUP BY 1, 2) h
    ON h.user_id = a.owner AND h.asset_id = a.asset_id AND a.shard = 0
    WHERE a.held <> coalesce(h.s, 0)
UNION ALL SELECT 'asset', asset_id FROM accounts GROUP BY asset_id HAVING sum(balance) <> 0
"""
SNAPSHOT = {
    # 0008 adds @expired's shards (empty): everything else is as it was.
    "accounts": "SELECT id, owner, asset_id, shard, balance, held FROM accounts "
    "WHERE owner <> '@expired' ORDER BY id",
    "entries": "SELECT id, transaction_id, account_id, amount FROM ledger_entries ORDER BY id",
    "transactions": "SELECT id, seq, status, partition, hold_status, reference_id, amount "
    "FROM transactions ORDER BY seq",
    "outbox": "SELECT id, transaction_id, status, payload FROM callback_deliveries ORDER BY id",
    "clients": "SELECT id, scopes, key_hash FROM api_clients ORDER BY id",
}


@pytest.fixture
def old_database(servers: Servers) -> Iterator[str]:
    url = servers.database(f"wallet_migration_{uuid.uuid4().hex[:10]}")
    embedded.ensure_database(url)
    _upgrade(url, "0004")
    try:
        yield url
    finally:
        embedded.drop_database(url)


def test_migration_moves_everything_into_the_default_ledger_and_nothing_is_lost(
    old_database, monkeypatch
):
    with psycopg2.connect(old_database) as conn, conn.cursor() as cur:
        cur.execute(OLD_DATA, PARAMS)
        cur.execute("SELECT setval(pg_get_serial_sequence('accounts', 'id'), 10)")
        cur.execute("SELECT setval(pg_get_serial_sequence('assets', 'id'), 2)")
        cur.execute(RECONCILE)
        assert cur.fetchall() == []
        before = _snapshot(cur)

    _upgrade(old_database, "head")

    with psycopg2.connect(old_database) as conn, conn.cursor() as cur:
        assert _snapshot(cur) == before
        for table in ("assets", "api_clients", "accounts", "transactions", "callback_deliveries"):
            cur.execute(f"SELECT DISTINCT ledger_id FROM {table}")
            assert cur.fetchall() == [(1,)], table
        cur.execute("SELECT code FROM ledgers")
        assert cur.fetchall() == [("default",)]
        cur.execute(
            "SELECT count(*) FROM assets s WHERE NOT EXISTS (SELECT 1 FROM accounts a "
            "WHERE a.asset_id = s.id AND a.owner = '@expired' AND a.balance = 0)"
        )
        assert cur.fetchone() == (0,)
        cur.execute(RECONCILE)
        assert cur.fetchall() == []

    # The service of today, on the migrated database: clean books, and the two commands
    # left pending apply in order in the partition they were accepted in.
    monkeypatch.setenv("DATABASE_URL", old_database)
    _forget_process_state()
    try:
        from db.reconciliation import reconcile
        from worker.drain import drain

        assert reconcile(1)["ok"] is True
        drain(ALICE_PARTITION)
        with psycopg2.connect(old_database) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT id, status FROM transactions WHERE id = ANY(%s::uuid[])",
                ([str(PENDING_SPEND), str(PENDING_CAPTURE)],),
            )
            assert {row[1] for row in cur.fetchall()} == {"completed"}
            cur.execute("SELECT balance, held FROM accounts WHERE owner = 'alice'")
            assert cur.fetchone() == (50, 0)  # 70 - 5 spent - 15 captured; the hold ended
        report = reconcile(1)
        assert report["ok"] is True, report
    finally:
        monkeypatch.undo()
        _forget_process_state()


def test_migration_0005_downgrades_to_0004_while_only_default_exists(old_database):
    _upgrade(old_database, "head")
    _downgrade(old_database, "0004")
    with psycopg2.connect(old_database) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('ledgers')")
        assert cur.fetchone() == (None,)


def _snapshot(cur) -> dict[str, list[tuple]]:
    found = {}
    for name, query in SNAPSHOT.items():
        cur.execute(query)
        found[name] = [tuple(str(v) for v in row) for row in cur.fetchall()]
    return found


def _config(url: str):
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    return config


def _upgrade(url: str, revision: str) -> None:
    from alembic import command

    command.upgrade(_config(url), revision)


def _downgrade(url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(_config(url), revision)
