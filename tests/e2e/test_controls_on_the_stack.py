"""Currency controls through the running stack: beat's expiry sweeper, the drain's
workers and the API in their own processes (the integration tests drive each piece)."""

from __future__ import annotations

import time
import uuid

from tests.support import unique


def new_asset(api, **settings) -> str:
    code = "E2E_" + uuid.uuid4().hex[:12].upper()
    response = api.post("/v1/assets", {"code": code, "name": code, **settings})
    assert response.status_code == 201, response.text
    return code


def balance_of(api, user: str, asset: str) -> dict:
    wallet = api.get(f"/v1/wallets/{user}").json()
    return next(b for b in wallet["balances"] if b["asset"] == asset)


def test_beat_expires_credits_within_seconds_and_they_go_to_expired(api):
    asset = new_asset(api, credit_lifetime=2)
    user = unique()
    topup = api.submit("topup", {"user_id": user, "asset": asset, "amount": 5})
    assert api.final(topup["id"])["status"] == "completed"
    spend = api.submit("spend", {"user_id": user, "asset": asset, "amount": 2, "item_id": "x"})
    assert api.final(spend["id"])["status"] == "completed"
    expiring = balance_of(api, user, asset)["expiring"]
    assert [lot["amount"] for lot in expiring] == [3]

    deadline = time.monotonic() + 20
    while balance_of(api, user, asset)["balance"] != 0:
        assert time.monotonic() < deadline, "beat did not expire the credit"
        time.sleep(0.2)
    history = api.get(f"/v1/wallets/{user}/transactions").json()["items"]
    expiry = next(tx for tx in history if tx["type"] == "expiry")
    assert (expiry["status"], expiry["amount"]) == ("completed", 3)
    assert balance_of(api, "@expired", asset)["balance"] == 3
    late = api.submit("spend", {"user_id": user, "asset": asset, "amount": 1, "item_id": "x"})
    assert api.final(late["id"])["error"]["code"] == "insufficient_funds"


def test_a_frozen_player_cannot_spend_until_unfrozen(api):
    asset = new_asset(api)
    user = unique()
    api.final(api.submit("topup", {"user_id": user, "asset": asset, "amount": 10})["id"])
    freeze = api.post(f"/v1/wallets/{user}/freeze", {"reason": "chargeback"}, unique("f"))
    assert freeze.status_code == 202, freeze.text
    assert api.final(freeze.json()["id"])["status"] == "completed"
    assert api.get(f"/v1/wallets/{user}").json()["frozen"]["reason"] == "chargeback"

    refused = api.submit("spend", {"user_id": user, "asset": asset, "amount": 1, "item_id": "x"})
    assert api.final(refused["id"])["error"]["code"] == "wallet_frozen"
    credit = api.submit("topup", {"user_id": user, "asset": asset, "amount": 5})
    assert api.final(credit["id"])["status"] == "completed"

    unfreeze = api.post(f"/v1/wallets/{user}/unfreeze", {}, unique("u"))
    assert api.final(unfreeze.json()["id"])["status"] == "completed"
    assert api.get(f"/v1/wallets/{user}").json()["frozen"] is None
    spend = api.submit("spend", {"user_id": user, "asset": asset, "amount": 15, "item_id": "x"})
    assert api.final(spend["id"])["status"] == "completed"
    assert balance_of(api, user, asset)["balance"] == 0
