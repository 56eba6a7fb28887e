"""A wallet's commands apply in acceptance order across partitions: a transfer credits a
payee owned by another partition, and whoever waits on it is woken."""

from __future__ import annotations

import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.exc import OperationalError

from db import batch as store
from ledger import CommandType, partition_of
from tests.integration.conftest import ADMIN
from tests.integration.helpers import (
    Drainers,
    balance,
    drain_all,
    statuses,
    submit,
    transaction,
    users_in_distinct_partitions,
)
from tests.support import unique
from worker import drain as drain_module
from worker.drain import drain


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


def test_a_command_waiting_on_a_rejected_transfer_is_woken(rings):
    """The transfer it waited for is rejected (no wallet changes): its partition is
    still rung, so it does not wait for the sweeper."""
    payer, payee = users_in_distinct_partitions(2)
    doomed = submit(
        CommandType.TRANSFER, from_user_id=payer, to_user_id=payee, asset="GOLD_COINS", amount=5
    )
    spend = submit(CommandType.SPEND, user_id=payee, asset="GOLD_COINS", amount=1)
    assert drain(partition_of(payee, 8)).finished == []  # waits for the transfer
    rejected = drain(partition_of(payer, 8))
    assert transaction(doomed["id"])["error"]["code"] == "insufficient_funds"
    assert partition_of(payee, 8) in rejected.ring
    drain(partition_of(payee, 8))
    assert transaction(spend["id"])["status"] == "rejected"  # applied, in order


def test_when_the_wake_up_query_fails_every_other_partition_is_rung(monkeypatch):
    def down(*args, **kwargs):
        raise OperationalError("SELECT", {}, ConnectionError("gone"))

    monkeypatch.setattr(store, "foreign_pending", down)
    assert drain_module.waiting_partitions(3, {"someone"}) == set(range(8)) - {3}
    assert drain_module.waiting_partitions(3, set()) == set()
