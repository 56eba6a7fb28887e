"""What the database itself refuses, whatever the application does."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from db.clients import BOOTSTRAP_CLIENT_ID
from db.engine import connect, get_engine
from db.models import Base
from db.reconciliation import report
from ledger import DEFAULT_LEDGER_ID
from tests.integration.conftest import post
from tests.integration.helpers import drain_all
from tests.support import unique


@pytest.fixture
def entry(client):
    user = unique()
    post(
        client,
        "/v1/transactions/topup",
        {"user_id": user, "asset": "GOLD_COINS", "amount": 9},
        unique("k"),
    )
    drain_all()
    with connect() as conn:
        return conn.execute(
            text(
                "SELECT e.id FROM ledger_entries e JOIN accounts a ON a.id = e.account_id "
                "WHERE a.owner = :u"
            ),
            {"u": user},
        ).scalar_one()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET amount = amount + 1 WHERE id = :id",
        "DELETE FROM ledger_entries WHERE id = :id",
        "TRUNCATE ledger_entries CASCADE",
    ],
)
def test_ledger_entries_can_be_neither_changed_nor_deleted(entry, statement):
    with pytest.raises(DBAPIError, match="append-only"), connect() as conn:
        conn.execute(text(statement), {"id": entry})


def test_entries_that_do_not_balance_are_refused():
    with pytest.raises(DBAPIError, match="do not sum to zero"), connect() as conn:
        tx = conn.execute(text("SELECT id FROM transactions LIMIT 1")).scalar_one()
        account = conn.execute(text("SELECT id FROM accounts LIMIT 1")).scalar_one()
        conn.execute(
            text(
                "INSERT INTO ledger_entries (transaction_id, account_id, amount) VALUES (:t, :a, 5)"
            ),
            {"t": tx, "a": account},
        )


@pytest.mark.parametrize(
    "change",
    ["balance = -1", "held = balance + 1", "held = -1"],
    ids=["overdrawn", "over-held", "negative-held"],
)
def test_a_user_wallet_cannot_have_negative_available(client, change):
    user = unique()
    post(
        client,
        "/v1/transactions/topup",
        {"user_id": user, "asset": "GOLD_COINS", "amount": 3},
        unique("k"),
    )
    drain_all()
    with pytest.raises(IntegrityError), connect() as conn:
        conn.execute(text(f"UPDATE accounts SET {change} WHERE owner = :u"), {"u": user})


def test_system_accounts_may_go_negative():
    with connect() as conn:
        balance = conn.execute(
            text("SELECT sum(balance) FROM accounts WHERE owner = '@treasury'")
        ).scalar_one()
    assert balance < 0  # the seed's opening balances came from @treasury


def test_one_transaction_per_client_and_idempotency_key():
    row = {
        "client": BOOTSTRAP_CLIENT_ID,
        "key": unique("key"),
    }
    insert = text(
        "INSERT INTO transactions (id, ledger_id, client_id, idempotency_key, fingerprint, "
        "type, partition, user_id, asset_id, amount) "
        "SELECT :id, ledger_id, :client, :key, 'f', 'topup', 0, 'u', id, 1 "
        "FROM assets WHERE ledger_id = 1 LIMIT 1"
    )
    with connect() as conn:
        conn.execute(insert, {**row, "id": uuid.uuid4()})
    with pytest.raises(IntegrityError), connect() as conn:
        conn.execute(insert, {**row, "id": uuid.uuid4()})
    with connect() as conn:  # leave nothing pending behind
        conn.execute(
            text("UPDATE transactions SET status = 'rejected' WHERE idempotency_key = :key"), row
        )


def test_reconciliation_reports_a_cached_balance_that_disagrees_with_entries(client):
    user = unique()
    post(
        client,
        "/v1/transactions/topup",
        {"user_id": user, "asset": "GOLD_COINS", "amount": 4},
        unique("k"),
    )
    drain_all()
    with get_engine().connect() as conn, conn.begin() as tx:
        conn.execute(
            text("UPDATE accounts SET balance = balance + 1 WHERE owner = :u"), {"u": user}
        )
        found = report(conn, DEFAULT_LEDGER_ID)
        tx.rollback()
    gold = next(a for a in found["assets"] if a["asset"] == "GOLD_COINS")
    assert found["ok"] is False
    assert gold["sum_of_balances"] == 1
    expected = {"account": user, "shard": 0, "field": "balance", "cached": 5, "expected": 4}
    assert expected in gold["mismatches"]


def test_models_and_migrations_agree(database):
    with get_engine().connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
