"""Accept, replay and apply: the path of one command through the real database."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from api import intake
from db.clients import BOOTSTRAP_CLIENT_ID
from ledger import DEFAULT_LEDGER_ID, CommandType, partition_of
from tests.integration.conftest import ADMIN, post
from tests.integration.helpers import drain_all
from tests.support import unique


def test_topup_is_recorded_pending_rings_its_partition_and_applies(client, rings):
    user = unique()
    response = post(
        client,
        "/v1/transactions/topup",
        {"user_id": user, "asset": "GOLD_COINS", "amount": 500},
        unique("key"),
    )
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "pending" and body["entries"] == []
    assert response.headers["Location"] == f"/v1/transactions/{body['id']}"
    assert rings == [partition_of(user, 8)]

    drain_all()
    applied = client.get(response.headers["Location"], headers=ADMIN).get_json()
    assert applied["status"] == "completed"
    assert applied["balance_after"] == 500
    assert applied["entries"] == [
        {"account": "@treasury", "direction": "debit", "amount": 500},
        {"account": user, "direction": "credit", "amount": 500},
    ]
    assert applied["completed_at"] >= applied["created_at"]


def test_a_replay_returns_the_same_transaction_in_its_current_state(client):
    user, key = unique(), unique("key")
    body = {"user_id": user, "asset": "GOLD_COINS", "amount": 7, "metadata": {"order": "1"}}
    first = post(client, "/v1/transactions/topup", body, key)
    again = post(client, "/v1/transactions/topup", dict(reversed(body.items())), key)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    drain_all()
    late = post(client, "/v1/transactions/topup", body, key)
    assert late.status_code == 200 and late.get_json()["status"] == "completed"
    wallet = client.get(f"/v1/wallets/{user}", headers=ADMIN).get_json()
    assert wallet["balances"][0]["balance"] == 7  # applied once, whatever the replays


def test_the_same_key_with_another_body_is_refused_and_changes_nothing(client):
    user, key = unique(), unique("key")
    post(
        client, "/v1/transactions/topup", {"user_id": user, "asset": "GOLD_COINS", "amount": 5}, key
    )
    refused = post(
        client, "/v1/transactions/topup", {"user_id": user, "asset": "GOLD_COINS", "amount": 6}, key
    )
    other_type = post(
        client, "/v1/transactions/bonus", {"user_id": user, "asset": "GOLD_COINS", "amount": 5}, key
    )
    for response in (refused, other_type):
        assert response.status_code == 422
        assert response.get_json()["code"] == "idempotency_key_reused"
    drain_all()
    assert (
        client.get(f"/v1/wallets/{user}", headers=ADMIN).get_json()["balances"][0]["balance"] == 5
    )


def test_keys_belong_to_their_client(client):
    created = client.post(
        "/v1/admin/clients", json={"name": "game-2", "scopes": ["submit", "read"]}, headers=ADMIN
    ).get_json()
    other = {"Authorization": f"Bearer {created['api_key']}"}
    user, key = unique(), unique("key")
    body = {"user_id": user, "asset": "GOLD_COINS", "amount": 1}
    a = post(client, "/v1/transactions/topup", body, key)
    b = post(client, "/v1/transactions/topup", body, key, headers=other)
    assert a.status_code == b.status_code == 202
    assert a.get_json()["id"] != b.get_json()["id"]
    found = client.get(f"/v1/transactions?idempotency_key={key}", headers=other).get_json()
    assert found["id"] == b.get_json()["id"]


def test_concurrent_duplicates_make_one_transaction_per_key_applied_once(database, rings):
    """50 keys, each submitted 4 times at once from real threads: the constraint decides."""
    from db.clients import client_by_id
    from db.engine import connect

    with connect() as conn:
        client = client_by_id(conn, BOOTSTRAP_CLIENT_ID)
    user = unique()
    keys = [unique("dup") for _ in range(50)]

    def submit(key: str) -> intake.Accepted:
        fields = {"user_id": user, "asset": "GOLD_COINS", "amount": 3}
        return intake.submit(client, intake.Submission(CommandType.TOPUP, key, fields))

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(submit, [k for k in keys for _ in range(4)]))
    ids_by_key: dict[str, set[str]] = {}
    for key, result in zip([k for k in keys for _ in range(4)], results, strict=True):
        ids_by_key.setdefault(key, set()).add(result.resource["id"])
    assert all(len(ids) == 1 for ids in ids_by_key.values())
    assert sum(r.created for r in results) == 50

    drain_all()
    with connect() as conn:
        from db import reads

        assert reads.wallet(conn, DEFAULT_LEDGER_ID, user)[0]["balance"] == 150
