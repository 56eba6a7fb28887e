"""Transfers under real concurrency: no deadlock, every one applied, totals conserved."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from ledger import CommandType, partition_of
from tests.integration.helpers import (
    Drainers,
    balance,
    drain_all,
    statuses,
    submit,
    transaction,
    users_in_distinct_partitions,
)


def fund(user: str, amount: int) -> None:
    submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=amount)


def transfer(payer: str, payee: str, amount: int = 1) -> str:
    return submit(
        CommandType.TRANSFER,
        from_user_id=payer,
        to_user_id=payee,
        asset="GOLD_COINS",
        amount=amount,
    )["id"]


def test_300_transfers_in_opposite_directions_never_deadlock(rings):
    alice, bob = users_in_distinct_partitions(2)
    fund(alice, 150)
    fund(bob, 150)
    drain_all()
    pairs = [(alice, bob), (bob, alice)] * 150
    with (
        Drainers({partition_of(alice, 8), partition_of(bob, 8)}, threads=4),
        ThreadPoolExecutor(32) as pool,
    ):
        ids = list(pool.map(lambda pair: transfer(*pair), pairs))
    assert statuses(ids) == Counter({("completed", None): 300})
    assert balance(alice) + balance(bob) == 300


def test_a_cycle_of_transfers_across_three_partitions_never_deadlocks(rings):
    a, b, c = users_in_distinct_partitions(3)
    for user in (a, b, c):
        fund(user, 100)
    drain_all()
    cycle = [(a, b), (b, c), (c, a)] * 100
    partitions = {partition_of(u, 8) for u in (a, b, c)}
    with Drainers(partitions, threads=6), ThreadPoolExecutor(32) as pool:
        ids = list(pool.map(lambda pair: transfer(*pair), cycle))
    assert statuses(ids) == Counter({("completed", None): 300})
    assert [balance(u) for u in (a, b, c)] == [100, 100, 100]


def test_a_transfer_credits_a_payee_in_another_partition_and_shows_in_both_histories(rings, client):
    from tests.integration.conftest import ADMIN

    payer, payee = users_in_distinct_partitions(2)
    fund(payer, 40)
    tx = transfer(payer, payee, 25)
    drain_all()
    done = transaction(tx)
    assert done["status"] == "completed"
    assert done["to_user_id"] == payee
    assert done["balance_after"] == 15
    assert done["entries"] == [
        {"account": payer, "direction": "debit", "amount": 25},
        {"account": payee, "direction": "credit", "amount": 25},
    ]
    for user in (payer, payee):
        items = client.get(f"/v1/wallets/{user}/transactions", headers=ADMIN).get_json()["items"]
        assert tx in [t["id"] for t in items]


def test_a_transfer_beyond_the_payers_available_is_rejected(rings):
    payer, payee = users_in_distinct_partitions(2)
    fund(payer, 5)
    tx = transfer(payer, payee, 6)
    drain_all()
    assert transaction(tx)["error"]["code"] == "insufficient_funds"
    assert balance(payer) == 5
