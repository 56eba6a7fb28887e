"""Batch submission: each item accepted or refused on its own, results in order."""

from __future__ import annotations

import uuid
from collections import Counter

from tests.integration.conftest import ADMIN, transaction_count
from tests.integration.helpers import balance, drain_all, statuses
from tests.support import unique


def post_batch(client, commands, headers=ADMIN):
    return client.post("/v1/transactions/batch", json={"commands": commands}, headers=headers)


def test_a_batch_of_1000_with_invalid_items_mixed_in(client, rings):
    users = [unique() for _ in range(10)]
    commands, invalid = [], {}
    for i in range(1000):
        user = users[i % 10]
        item = {
            "type": "topup",
            "idempotency_key": f"{user}-{i}",
            "user_id": user,
            "asset": "GOLD_COINS",
            "amount": 2,
        }
        if i % 97 == 0:
            item["amount"] = 2.5
            invalid[i] = (422, "validation_error")
        elif i % 89 == 0:
            item["asset"] = "RUBIES"
            invalid[i] = (422, "unknown_asset")
        elif i % 83 == 0:
            del item["idempotency_key"]
            invalid[i] = (400, "idempotency_key_missing")
        elif i % 79 == 0:
            item["type"] = "steal"
            invalid[i] = (422, "validation_error")
        elif i % 73 == 0:
            item = {"type": "capture", "idempotency_key": f"cap-{i}", "hold_id": str(uuid.uuid4())}
            invalid[i] = (404, "not_found")
        commands.append(item)
    response = post_batch(client, commands)
    assert response.status_code == 202
    results = response.get_json()["results"]
    assert len(results) == 1000
    for i, result in enumerate(results):
        if i in invalid:
            assert (result["status"], result["code"]) == invalid[i], (i, result)
        else:
            assert result["status"] == "pending" and result["replayed"] is False
            assert result["idempotency_key"] == commands[i]["idempotency_key"]
    accepted = [r["id"] for i, r in enumerate(results) if i not in invalid]
    assert len(rings) == len(set(rings))  # one doorbell per partition touched, not per item
    drain_all()
    assert statuses(accepted) == Counter({("completed", None): len(accepted)})
    expected = Counter()
    for i, item in enumerate(commands):
        if i not in invalid:
            expected[item["user_id"]] += 2
    assert all(balance(user) == total for user, total in expected.items())

    # The same batch again: valid items replay (same ids, no effect), invalid stay refused.
    before = transaction_count()
    replay = post_batch(client, commands).get_json()["results"]
    assert transaction_count() == before
    for i, result in enumerate(replay):
        if i in invalid:
            assert (result["status"], result["code"]) == invalid[i]
        else:
            assert result["replayed"] is True and result["id"] == results[i]["id"]
            assert result["status"] == "completed"
    drain_all()
    assert all(balance(user) == total for user, total in expected.items())


def test_batch_items_of_every_type(client, rings):
    payer, payee = unique(), unique()
    first = post_batch(
        client,
        [
            {
                "type": "topup",
                "idempotency_key": "a",
                "user_id": payer,
                "asset": "GOLD_COINS",
                "amount": 100,
            },
            {
                "type": "bonus",
                "idempotency_key": unique(),
                "user_id": payer,
                "asset": "GOLD_COINS",
                "amount": 10,
            },
            {
                "type": "spend",
                "idempotency_key": unique(),
                "user_id": payer,
                "asset": "GOLD_COINS",
                "amount": 5,
            },
            {
                "type": "transfer",
                "idempotency_key": unique(),
                "from_user_id": payer,
                "to_user_id": payee,
                "asset": "GOLD_COINS",
                "amount": 5,
            },
            {
                "type": "hold",
                "idempotency_key": unique(),
                "user_id": payer,
                "asset": "GOLD_COINS",
                "amount": 50,
                "expires_in": 60,
            },
        ],
    ).get_json()["results"]
    assert [r["status"] for r in first] == ["pending"] * 5
    hold_id = first[4]["id"]
    drain_all()
    second = post_batch(
        client,
        [
            {"type": "capture", "idempotency_key": unique(), "hold_id": hold_id, "amount": 20},
            {"type": "release", "idempotency_key": unique(), "hold_id": hold_id},
            {
                "type": "reverse",
                "idempotency_key": unique(),
                "transaction_id": first[2]["id"],
                "reason": "refund",
            },
            {"type": "capture", "idempotency_key": unique(), "hold_id": "not-a-uuid"},
        ],
    ).get_json()["results"]
    assert [r["status"] for r in second[:3]] == ["pending"] * 3
    assert second[3]["status"] == 422 and "hold_id" in second[3]["errors"]
    drain_all()
    assert statuses([second[0]["id"]]) == Counter({("completed", None): 1})
    assert statuses([second[1]["id"]]) == Counter({("rejected", "hold_not_active"): 1})
    assert balance(payer) == 100 + 10 - 5 - 5 - 20 + 5
    assert balance(payee) == 5


def test_batch_size_and_body_limits(client):
    item = {
        "type": "topup",
        "idempotency_key": "k",
        "user_id": "u",
        "asset": "GOLD_COINS",
        "amount": 1,
    }
    assert post_batch(client, []).status_code == 422
    too_many = post_batch(client, [dict(item, idempotency_key=str(i)) for i in range(1001)])
    assert too_many.status_code == 422 and too_many.get_json()["code"] == "validation_error"
    huge = [dict(item, idempotency_key=str(i), metadata={"pad": "x" * 1100}) for i in range(1000)]
    assert post_batch(client, huge).status_code == 413
    assert (
        client.post("/v1/transactions/batch", json={"commands": "no"}, headers=ADMIN).status_code
        == 422
    )


def test_batch_reversal_items_need_the_admin_scope(client, rings):
    game = client.post(
        "/v1/admin/clients", json={"name": "game", "scopes": ["submit", "read"]}, headers=ADMIN
    ).get_json()
    headers = {"Authorization": f"Bearer {game['api_key']}"}
    user = unique()
    results = post_batch(
        client,
        [
            {
                "type": "topup",
                "idempotency_key": unique(),
                "user_id": user,
                "asset": "GOLD_COINS",
                "amount": 1,
            },
            {
                "type": "reverse",
                "idempotency_key": unique(),
                "transaction_id": str(uuid.uuid4()),
                "reason": "x",
            },
        ],
        headers=headers,
    ).get_json()["results"]
    assert results[0]["status"] == "pending"
    assert (results[1]["status"], results[1]["code"]) == (403, "forbidden")
    drain_all()


def test_a_key_reused_with_another_body_inside_a_batch_is_refused_alone(client, rings):
    user, key = unique(), unique()
    results = post_batch(
        client,
        [
            {
                "type": "topup",
                "idempotency_key": key,
                "user_id": user,
                "asset": "GOLD_COINS",
                "amount": 1,
            },
            {
                "type": "topup",
                "idempotency_key": key,
                "user_id": user,
                "asset": "GOLD_COINS",
                "amount": 2,
            },
            {
                "type": "topup",
                "idempotency_key": key,
                "user_id": user,
                "asset": "GOLD_COINS",
                "amount": 1,
            },
        ],
    ).get_json()["results"]
    assert results[0]["status"] == "pending" and results[0]["replayed"] is False
    assert results[1]["code"] == "idempotency_key_reused"
    assert results[2]["replayed"] is True and results[2]["id"] == results[0]["id"]
    drain_all()
    assert balance(user) == 1


def test_a_batch_item_of_a_type_the_api_does_not_take_is_refused_alone(client, rings):
    """CommandType knows types the API has no schema for (freeze, unfreeze, expiry): a
    batch item naming one is a validation error of its own, never a 500."""
    user = unique()
    ok = {"type": "topup", "idempotency_key": unique("k"), "user_id": user}
    ok |= {"asset": "GOLD_COINS", "amount": 1}
    items = [
        {"type": t, "idempotency_key": unique("k"), "user_id": user} for t in ("freeze", "expiry")
    ]
    response = post_batch(client, [*items, ok])
    assert response.status_code == 202
    results = response.get_json()["results"]
    assert [(r["status"], r.get("code")) for r in results[:2]] == [(422, "validation_error")] * 2
    assert "freeze" not in results[0]["errors"]["type"][0]
    assert results[2]["status"] == "pending"
