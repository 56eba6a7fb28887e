"""The three flows and every read, over HTTP against the running stack."""

from __future__ import annotations

import time
import uuid

import requests

from tests.support import unique


def test_topup_bonus_spend_and_every_read(api):
    game = api.post("/v1/admin/clients", {"name": "game", "scopes": ["submit", "read"]})
    assert game.status_code == 201
    key = game.json()["api_key"]
    assert game.json()["webhook_secret"]
    user = unique()

    def submit(kind, body, idem):
        response = api.post(f"/v1/transactions/{kind}", body, idem, key=key)
        assert response.status_code == 202, response.text
        assert response.headers["Location"] == f"/v1/transactions/{response.json()['id']}"
        return response.json()

    topup = submit("topup", {"user_id": user, "asset": "GOLD_COINS", "amount": 500}, "t-1")
    bonus = submit(
        "bonus", {"user_id": user, "asset": "GOLD_COINS", "amount": 50, "reason": "welcome"}, "b-1"
    )
    spend = submit(
        "spend",
        {
            "user_id": user,
            "asset": "GOLD_COINS",
            "amount": 120,
            "item_id": "sword",
            "metadata": {"order": "88"},
        },
        "s-1",
    )
    too_much = submit("spend", {"user_id": user, "asset": "GOLD_COINS", "amount": 10_000}, "s-2")

    done = {t["id"]: api.final(t["id"]) for t in (topup, bonus, spend, too_much)}
    assert done[topup["id"]]["entries"] == [
        {"account": "@treasury", "direction": "debit", "amount": 500},
        {"account": user, "direction": "credit", "amount": 500},
    ]
    assert done[bonus["id"]]["entries"][0]["account"] == "@promotions"
    assert done[bonus["id"]]["reason"] == "welcome"
    assert done[spend["id"]]["entries"][1] == {
        "account": "@revenue",
        "direction": "credit",
        "amount": 120,
    }
    assert done[spend["id"]]["balance_after"] == 430
    assert done[spend["id"]]["metadata"] == {"order": "88"}
    rejected = done[too_much["id"]]
    assert rejected["status"] == "rejected"
    assert rejected["error"]["code"] == "insufficient_funds"
    assert rejected["entries"] == [] and rejected["balance_after"] is None

    # Replay: 200, the same transaction, in its current (final) state.
    replay = api.post(
        "/v1/transactions/topup",
        {"user_id": user, "asset": "GOLD_COINS", "amount": 500},
        "t-1",
        key=key,
    )
    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == topup["id"] and replay.json()["status"] == "completed"

    wallet = api.get(f"/v1/wallets/{user}", key=key).json()
    assert wallet == {
        "user_id": user,
        "frozen": None,
        "balances": [
            {
                "asset": "GOLD_COINS",
                "balance": 430,
                "held": 0,
                "available": 430,
                "updated_at": wallet["balances"][0]["updated_at"],
            }
        ],
    }
    by_key = api.get("/v1/transactions", key=key, idempotency_key="s-1").json()
    assert by_key["id"] == spend["id"]
    assert (
        api.get("/v1/transactions", idempotency_key="s-1").status_code == 404
    )  # admin's keys differ

    first = api.get(f"/v1/wallets/{user}/transactions", key=key, limit=3).json()
    assert [t["id"] for t in first["items"]] == [too_much["id"], spend["id"], bonus["id"]]
    second = api.get(
        f"/v1/wallets/{user}/transactions", key=key, limit=3, cursor=first["next_cursor"]
    ).json()
    assert [t["id"] for t in second["items"]] == [topup["id"]]
    assert second["next_cursor"] is None
    gold_only = api.get(f"/v1/wallets/{user}/transactions", key=key, asset="DIAMONDS").json()
    assert gold_only == {"items": [], "next_cursor": None}

    treasury = api.get("/v1/wallets/@treasury", key=key).json()
    assert {b["asset"] for b in treasury["balances"]} >= {"GOLD_COINS"}
    assert all(b["balance"] <= 0 for b in treasury["balances"])
    assets = api.get("/v1/assets", key=key).json()["items"]
    assert {"code": "DIAMONDS", "name": "Diamonds"} in assets


def test_the_seed_gave_alice_and_bob_real_opening_balances(api):
    alice = {b["asset"]: b["balance"] for b in api.get("/v1/wallets/alice").json()["balances"]}
    assert alice["DIAMONDS"] == 50 and alice["LOYALTY_POINTS"] == 200
    history = api.get("/v1/wallets/bob/transactions").json()["items"]
    opening = [t for t in history if t["idempotency_key"].startswith("seed:opening:bob")]
    assert {t["asset"]: t["amount"] for t in opening} == {"GOLD_COINS": 500, "DIAMONDS": 20}
    assert all(t["entries"][0]["account"] == "@treasury" for t in opening)


def test_new_assets_can_be_added_and_used(api):
    code = "GEM_" + uuid.uuid4().hex[:6].upper()
    created = api.post("/v1/assets", {"code": code, "name": "Gems"})
    assert created.status_code == 201
    assert api.post("/v1/assets", {"code": code, "name": "Gems"}).json()["code"] == "asset_exists"
    user = unique()
    done = api.final(api.submit("topup", {"user_id": user, "asset": code, "amount": 3})["id"])
    assert done["status"] == "completed"
    assert api.balance(user, code) == 3


def test_operations_endpoints(stack, api):
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json()["database"] == "ok"
    metrics = api.get("/metrics").text
    accepted = [
        line for line in metrics.splitlines() if line.startswith("wallet_commands_accepted_total{")
    ]
    assert any('type="topup"' in line and 'ledger="default"' in line for line in accepted)
    assert "wallet_commands_applied_total" in metrics
    assert "wallet_apply_latency_seconds_bucket" in metrics
    assert 'wallet_queue_depth{partition="7"}' in metrics
    assert 'wallet_pending_commands{partition="0"}' in metrics
    spec = api.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    for path in ("/v1/transactions/topup", "/v1/wallets/{user_id}", "/v1/admin/reconciliation"):
        assert path in spec["paths"]
    docs = api.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_flower_shows_the_workers_behind_basic_auth(stack):
    assert requests.get(stack.flower_url + "/", timeout=10).status_code == 401
    expected = {f"partitions-{i}" for i in range(4)} | {"callbacks"}
    deadline = time.monotonic() + 60
    seen: set[str] = set()
    while not expected <= seen:
        assert time.monotonic() < deadline, f"Flower lists {seen}, expected {expected}"
        # refresh=1: Flower asks the workers now (a broadcast with a 1 s timeout).
        workers = requests.get(
            stack.flower_url + "/api/workers?refresh=1", auth=stack.flower_auth, timeout=30
        )
        assert workers.status_code == 200
        seen |= {name.split("@")[0] for name in workers.json()}
    queues = requests.get(
        stack.flower_url + "/api/queues/length", auth=stack.flower_auth, timeout=30
    )
    assert queues.status_code == 200
