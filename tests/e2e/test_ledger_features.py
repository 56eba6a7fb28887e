"""Transfers, holds, reversals and batches against the running stack."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from ledger import partition_of
from tests.support import unique


def distinct_partition_users(count: int) -> list[str]:
    found: dict[int, str] = {}
    while len(found) < count:
        user = unique()
        found.setdefault(partition_of(user, 8), user)
    return list(found.values())


def fund(api, user: str, amount: int) -> None:
    api.final(api.submit("topup", {"user_id": user, "asset": "GOLD_COINS", "amount": amount})["id"])


def test_transfers_opposite_and_in_a_cycle_never_deadlock(stack, api):
    a, b, c = distinct_partition_users(3)
    for user in (a, b, c):
        fund(api, user, 200)
    deadlocks_before = stack.deadlocks()
    moves = [(a, b), (b, a)] * 150 + [(a, b), (b, c), (c, a)] * 100

    def transfer(pair):
        payer, payee = pair
        body = {"from_user_id": payer, "to_user_id": payee, "asset": "GOLD_COINS", "amount": 1}
        return api.submit("transfer", body)

    with ThreadPoolExecutor(max_workers=48) as pool:
        accepted = list(pool.map(transfer, moves))
        finals = list(pool.map(lambda t: api.final(t["id"]), accepted))
    assert Counter(f["status"] for f in finals) == {"completed": 600}
    assert [api.balance(u) for u in (a, b, c)] == [200, 200, 200]
    assert stack.deadlocks() == deadlocks_before


def test_hold_then_capture_back_to_back_apply_in_order(api):
    user = unique()
    api.submit("topup", {"user_id": user, "asset": "GOLD_COINS", "amount": 100})
    hold = api.submit(
        "hold", {"user_id": user, "asset": "GOLD_COINS", "amount": 60, "expires_in": 300}
    )
    capture = api.post(f"/v1/transactions/{hold['id']}/capture", {"amount": 45}, unique("cap"))
    assert capture.status_code == 202
    assert api.final(capture.json()["id"])["status"] == "completed"
    held = api.final(hold["id"])
    assert held["hold_status"] == "captured"
    assert held["expires_at"] > held["created_at"]
    wallet = api.get(f"/v1/wallets/{user}").json()["balances"][0]
    assert (wallet["balance"], wallet["held"], wallet["available"]) == (55, 0, 55)


def test_beat_expires_a_hold_within_seconds(api):
    user = unique()
    fund(api, user, 100)
    hold = api.submit(
        "hold", {"user_id": user, "asset": "GOLD_COINS", "amount": 30, "expires_in": 1}
    )
    assert api.final(hold["id"])["hold_status"] == "active"
    deadline = time.monotonic() + 10
    while api.get(f"/v1/transactions/{hold['id']}").json()["hold_status"] != "expired":
        assert time.monotonic() < deadline, "beat did not expire the hold"
        time.sleep(0.2)
    assert api.get(f"/v1/wallets/{user}").json()["balances"][0]["held"] == 0
    late = api.post(f"/v1/transactions/{hold['id']}/release", None, unique("rel"))
    assert api.final(late.json()["id"])["error"]["code"] == "hold_not_active"


def test_reversal_over_http(api):
    user = unique()
    fund(api, user, 100)
    spend = api.final(
        api.submit("spend", {"user_id": user, "asset": "GOLD_COINS", "amount": 40})["id"]
    )
    reversal = api.post(
        f"/v1/transactions/{spend['id']}/reverse", {"reason": "refund"}, unique("rev")
    )
    assert reversal.status_code == 202
    done = api.final(reversal.json()["id"])
    assert done["reverses"] == spend["id"] and done["reason"] == "refund"
    assert api.get(f"/v1/transactions/{spend['id']}").json()["reversed_by"] == done["id"]
    again = api.post(f"/v1/transactions/{spend['id']}/reverse", {"reason": "twice"}, unique("rev"))
    assert api.final(again.json()["id"])["error"]["code"] == "already_reversed"
    assert api.balance(user) == 100


def test_batch_over_http(api):
    user = unique()
    commands = [
        {
            "type": "topup",
            "idempotency_key": unique(),
            "user_id": user,
            "asset": "GOLD_COINS",
            "amount": 10,
        }
        for _ in range(99)
    ] + [
        {
            "type": "spend",
            "idempotency_key": unique(),
            "user_id": user,
            "asset": "GOLD_COINS",
            "amount": 0,
        }
    ]
    response = api.post("/v1/transactions/batch", {"commands": commands})
    assert response.status_code == 202
    results = response.json()["results"]
    assert [r["status"] for r in results[:99]] == ["pending"] * 99
    assert results[99]["status"] == 422 and results[99]["code"] == "validation_error"
    for result in results[:99]:
        api.final(result["id"])
    assert api.balance(user) == 990


def test_gifts_then_purchases_apply_in_order_across_partitions(api):
    """20 players at once, each: a gift of 10 from a player in another partition, then a
    purchase of 10, back to back, five times: every purchase completes."""
    pairs = [distinct_partition_users(2) for _ in range(20)]
    for payer, _ in pairs:
        fund(api, payer, 50)

    def play(pair):
        payer, payee = pair
        spends = []
        for _ in range(5):
            api.submit(
                "transfer",
                {"from_user_id": payer, "to_user_id": payee, "asset": "GOLD_COINS", "amount": 10},
            )
            spends.append(
                api.submit("spend", {"user_id": payee, "asset": "GOLD_COINS", "amount": 10})
            )
        return spends

    with ThreadPoolExecutor(max_workers=20) as pool:
        spends = [s for played in pool.map(play, pairs) for s in played]
        finals = list(pool.map(lambda s: api.final(s["id"]), spends))
    assert Counter(f["status"] for f in finals) == {"completed": 100}
