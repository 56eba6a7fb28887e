"""Regressions for problems a review found, each reproduced before it was fixed."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from api import intake
from db import batch as store
from db.assets import catalog, create_asset
from db.engine import connect, get_engine
from ledger import DEFAULT_LEDGER_ID, MAX_AMOUNT, CommandType, partition_of
from tests.integration.conftest import ADMIN
from tests.integration.helpers import (
    Drainers,
    balance,
    bootstrap,
    drain_all,
    statuses,
    submit,
    transaction,
    users_in_distinct_partitions,
)
from tests.support import unique
from worker.drain import _reject_poison, drain


def test_a_transfer_accepted_before_the_payees_spend_is_applied_before_it(rings):
    """Payee's partition drained first: the spend must wait for the earlier transfer."""
    payer, payee = users_in_distinct_partitions(2)
    submit(CommandType.TOPUP, user_id=payer, asset="GOLD_COINS", amount=100)
    drain_all()
    gift = submit(
        CommandType.TRANSFER, from_user_id=payer, to_user_id=payee, asset="GOLD_COINS", amount=100
    )
    spend = submit(CommandType.SPEND, user_id=payee, asset="GOLD_COINS", amount=100)
    waited = drain(partition_of(payee, 8))
    assert waited.finished == []  # the spend waits, it is not rejected
    assert partition_of(payer, 8) in waited.ring  # and rings the partition in its way
    applied = drain(partition_of(payer, 8))
    assert [f.id for f in applied.finished] == [uuid.UUID(gift["id"])]
    assert partition_of(payee, 8) in applied.ring  # which rings it back once applied
    drain(partition_of(payee, 8))
    assert transaction(spend["id"])["status"] == "completed"
    assert balance(payee) == 0


def test_a_transfer_accepted_after_the_payees_spend_is_applied_after_it(rings):
    """Payer's partition drained first: the transfer must wait for the payee's earlier spend."""
    payer, payee = users_in_distinct_partitions(2)
    submit(CommandType.TOPUP, user_id=payer, asset="GOLD_COINS", amount=100)
    submit(CommandType.TOPUP, user_id=payee, asset="GOLD_COINS", amount=30)
    drain_all()
    spend = submit(CommandType.SPEND, user_id=payee, asset="GOLD_COINS", amount=50)
    gift = submit(
        CommandType.TRANSFER, from_user_id=payer, to_user_id=payee, asset="GOLD_COINS", amount=100
    )
    assert drain(partition_of(payer, 8)).finished == []
    drain_all()
    # In acceptance order the spend came first, when the payee had only 30.
    assert transaction(spend["id"])["error"]["code"] == "insufficient_funds"
    assert transaction(gift["id"])["status"] == "completed"
    assert balance(payee) == 130


def test_gifts_then_purchases_keep_order_under_concurrency(rings):
    """20 players, each: a gift of 10 from a player in another partition, then a spend of
    10, five times, while threads drain every partition: every spend completes."""
    pairs = [users_in_distinct_partitions(2) for _ in range(20)]
    for payer, _ in pairs:
        submit(CommandType.TOPUP, user_id=payer, asset="GOLD_COINS", amount=50)
    drain_all()

    def play(pair):
        payer, payee = pair
        spends = []
        for _ in range(5):
            submit(
                CommandType.TRANSFER,
                from_user_id=payer,
                to_user_id=payee,
                asset="GOLD_COINS",
                amount=10,
            )
            spends.append(
                submit(CommandType.SPEND, user_id=payee, asset="GOLD_COINS", amount=10)["id"]
            )
        return spends

    with Drainers(set(range(8)), threads=4), ThreadPoolExecutor(20) as pool:
        spends = [s for played in pool.map(play, pairs) for s in played]
    assert statuses(spends) == Counter({("completed", None): 100})


def test_batch_items_for_one_wallet_apply_in_request_order_whatever_their_keys(client, rings):
    user = unique()
    post = client.post
    first = post(
        "/v1/transactions/batch",
        json={
            "commands": [
                {
                    "type": "topup",
                    "idempotency_key": unique(),
                    "user_id": user,
                    "asset": "GOLD_COINS",
                    "amount": 100,
                },
                {
                    "type": "hold",
                    "idempotency_key": unique(),
                    "user_id": user,
                    "asset": "GOLD_COINS",
                    "amount": 50,
                    "expires_in": 60,
                },
            ]
        },
        headers=ADMIN,
    ).get_json()["results"]
    drain_all()
    hold_id = first[1]["id"]
    # The capture's key sorts after the release's: request order must still win.
    second = post(
        "/v1/transactions/batch",
        json={
            "commands": [
                {
                    "type": "capture",
                    "idempotency_key": "z-" + unique(),
                    "hold_id": hold_id,
                    "amount": 20,
                },
                {"type": "release", "idempotency_key": "a-" + unique(), "hold_id": hold_id},
            ]
        },
        headers=ADMIN,
    ).get_json()["results"]
    drain_all()
    assert transaction(second[0]["id"])["status"] == "completed"
    assert transaction(second[1]["id"])["error"]["code"] == "hold_not_active"


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


def test_a_nul_character_is_a_422_not_a_500(client):
    for body in (
        '{"user_id": "u", "asset": "GOLD_COINS", "amount": 1, "metadata": {"note": "a\\u0000b"}}',
        '{"user_id": "u", "asset": "GOLD_COINS", "amount": 1, "item_id": "\\u0000"}',
        '{"user_id": "u", "asset": "GOLD_COINS", "amount": 1, "metadata": {"k\\u0000": 1}}',
    ):
        response = client.post(
            "/v1/transactions/spend", data=body, headers={**ADMIN, "Idempotency-Key": unique()}
        )
        assert response.status_code == 422, response.get_json()
        assert response.get_json()["code"] == "validation_error"


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
