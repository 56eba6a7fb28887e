"""The drain under trouble: a poison command, a racing intake, huge issuance, a second
application, competing chains, a failed chain; nothing stalls and nothing applies twice."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from api import intake
from db import batch as store
from db.assets import catalog, create_asset
from db.engine import connect, get_engine
from ledger import DEFAULT_LEDGER_ID, MAX_AMOUNT, CommandType, partition_of
from tests.integration.helpers import (
    balance,
    bootstrap,
    drain_all,
    submit,
    transaction,
)
from tests.support import unique
from worker.drain import _reject_poison


def test_poison_isolation_rejects_the_failing_command_and_no_other(rings):
    user = unique()
    healthy = submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=1)
    poison = submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=2)
    # The head of the queue is the healthy command; the poison's id is what failed.
    _reject_poison(partition_of(user, 8), uuid.UUID(poison["id"]), RuntimeError("test"))
    assert transaction(poison["id"])["error"]["code"] == "internal_error"
    assert transaction(healthy["id"])["status"] == "pending"
    drain_all()
    assert transaction(healthy["id"])["status"] == "completed"


def test_a_drain_holding_a_pending_hold_does_not_block_a_capture_intake(rings):
    user = unique()
    submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=10)
    hold = submit(CommandType.HOLD, user_id=user, asset="GOLD_COINS", amount=5, expires_in=60)
    with get_engine().connect() as drain_conn, drain_conn.begin():
        # The drain's own read of its batch, with the locks it takes on the rows.
        locked = store.pending_commands(drain_conn, partition_of(user, 8), 500)
        assert uuid.UUID(hold["id"]) in {row.id for row in locked}
        done = threading.Event()
        threading.Thread(
            target=lambda: (submit(CommandType.CAPTURE, hold_id=uuid.UUID(hold["id"])), done.set())
        ).start()
        assert done.wait(timeout=3), "the capture's intake waited for the drain's row lock"
    drain_all()


def test_system_shards_do_not_overflow_when_issuance_passes_2_to_the_63(rings):
    """1,100 top-ups of 2^53-1 in one partition: @treasury's shard passes -2^63."""
    code = "BIG_" + uuid.uuid4().hex[:6].upper()
    with connect() as conn:
        create_asset(conn, DEFAULT_LEDGER_ID, code, "Big")
    catalog.clear()
    users = []
    while len(users) < 1100:
        user = unique()
        if partition_of(user, 8) == 0:
            users.append(user)
    client = bootstrap()
    submissions = [
        intake.Submission(
            CommandType.TOPUP, unique("big"), {"user_id": u, "asset": code, "amount": MAX_AMOUNT}
        )
        for u in users
    ]
    for start in range(0, len(submissions), 500):
        intake.submit_many(client, submissions[start : start + 500])
    drain_all()
    assert balance(users[-1], code) == MAX_AMOUNT
    with connect() as conn:
        shard = conn.execute(
            text(
                "SELECT a.balance FROM accounts a JOIN assets s ON s.id = a.asset_id "
                "WHERE a.owner = '@treasury' AND s.code = :c AND a.shard = 0"
            ),
            {"c": code},
        ).scalar_one()
    assert shard == -1100 * MAX_AMOUNT < -(2**63)


def test_the_database_refuses_a_second_application_of_a_transaction(rings):
    user = unique()
    tx = submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=3)
    drain_all()
    with (
        pytest.raises(IntegrityError, match="ledger_entries_transaction_account_key"),
        connect() as conn,
    ):
        conn.execute(
            text(
                "INSERT INTO ledger_entries (transaction_id, account_id, amount) "
                "SELECT transaction_id, account_id, amount FROM ledger_entries "
                "WHERE transaction_id = :t"
            ),
            {"t": tx["id"]},
        )


def test_a_replay_of_a_still_pending_command_rings_again(rings):
    user, key = unique(), unique("key")
    submit(CommandType.TOPUP, key, user_id=user, asset="GOLD_COINS", amount=1)
    submit(CommandType.TOPUP, key, user_id=user, asset="GOLD_COINS", amount=1)
    assert rings.count(partition_of(user, 8)) == 2
    drain_all()


def test_one_drain_chain_per_partition():
    from db.lease import ChainLock

    first, second = ChainLock(5), ChainLock(5)
    try:
        assert first.acquire()
        assert not second.acquire()
        first.release()
        assert second.acquire()
        assert ChainLock(6).acquire() is True
    finally:
        first.close()
        second.close()


def test_a_failed_drain_chain_releases_the_doorbell(monkeypatch):
    from worker import doorbell, tasks

    partition = 7
    doorbell.redis_client().set(doorbell.flag(partition), "1")
    monkeypatch.setattr(tasks, "drain", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    tasks.apply_partition(partition)
    assert doorbell.redis_client().get(doorbell.flag(partition)) is None
