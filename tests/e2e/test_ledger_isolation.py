"""Every operation of /openapi.json, called with a key of another ledger and every id of
the first one it can take: nothing of the first ledger is visible or changed.

The walk is generated from the document, so an endpoint added later is walked too:
path parameters get the first ledger's transaction, hold and player; query parameters
its idempotency key; bodies the documented example, pointed at the first ledger's
player and holds (which, in the second ledger, are somebody else or nothing).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
import requests

from tests.e2e.client import Api
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def first(stack: Stack) -> dict[str, Any]:
    """The first ledger (`default`): a player with a completed top-up, a spend, an active
    hold, and a command with a callback, all made by a client of that ledger."""
    admin = stack.api
    created = admin.post(
        "/v1/admin/clients",
        {
            "name": "title-a-server",
            "scopes": ["submit", "read", "admin"],
            "callback_hosts": ["127.0.0.1:9"],
        },
    ).json()
    game = Api(admin.base_url, created["api_key"])
    player = f"iso-{uuid.uuid4().hex[:8]}"
    keys = {kind: f"iso-a-{kind}-{uuid.uuid4().hex[:8]}" for kind in ("topup", "spend", "hold")}
    topup = game.submit(
        "topup",
        {
            "user_id": player,
            "asset": "GOLD_COINS",
            "amount": 500,
            "callback_url": "http://127.0.0.1:9/hook",
        },
        keys["topup"],
    )
    spend = game.submit(
        "spend", {"user_id": player, "asset": "GOLD_COINS", "amount": 50}, keys["spend"]
    )
    hold = game.submit(
        "hold",
        {"user_id": player, "asset": "GOLD_COINS", "amount": 100, "expires_in": 3600},
        keys["hold"],
    )
    for tx in (topup, spend, hold):
        assert game.final(tx["id"])["status"] == "completed"
    return {
        "api": game,
        "player": player,
        "keys": keys,
        "ids": {"topup": topup["id"], "spend": spend["id"], "hold": hold["id"]},
    }


@pytest.fixture(scope="module")
def second(stack: Stack) -> Api:
    """A client with every scope in a second ledger, which has the same asset code."""
    admin = stack.api
    code = f"title-b-{uuid.uuid4().hex[:6]}"
    assert admin.post("/v1/admin/ledgers", {"code": code, "name": "Title B"}).status_code == 201
    created = admin.post(
        "/v1/admin/clients",
        {"name": "title-b-server", "scopes": ["submit", "read", "admin"], "ledger": code},
    ).json()
    other = Api(admin.base_url, created["api_key"])
    assert other.post("/v1/assets", {"code": "GOLD_COINS", "name": "Gold"}).status_code == 201
    return other


def view_of(first: dict[str, Any]) -> dict[str, Any]:
    """What the first ledger looks like to its own client: what must not change."""
    game: Api = first["api"]
    return {
        "wallet": [
            (b["asset"], b["balance"], b["held"])
            for b in game.get(f"/v1/wallets/{first['player']}").json()["balances"]
        ],
        "transactions": {
            name: {
                k: v
                for k, v in game.get(f"/v1/transactions/{tx}").json().items()
                if k in ("status", "hold_status", "reversed_by", "amount")
            }
            for name, tx in first["ids"].items()
        },
        "history": [
            t["id"] for t in game.get(f"/v1/wallets/{first['player']}/transactions").json()["items"]
        ],
        "reconciliation": {
            a["asset"]: a["sum_of_balances"]
            for a in game.get("/v1/admin/reconciliation").json()["assets"]
        },
    }


def operations(document: dict[str, Any]):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method, path, operation


def test_every_operation_with_a_key_of_another_ledger_sees_and_changes_nothing_of_the_first(
    stack, first, second
):
    document = requests.get(f"{stack.api.base_url}/openapi.json", timeout=10).json()
    before = view_of(first)
    secrets = [*first["ids"].values(), *first["keys"].values()]
    walked = 0
    # Reads first: the writes then give the second ledger a player with the first one's
    # id (its own, which it may read), and the reads must have found nothing before.
    walk = sorted(operations(document), key=lambda op: op[0] != "get")
    for method, path, operation in walk:
        for url, body in requests_for(path, operation, first):
            headers = second.headers(**{"Idempotency-Key": f"iso-b-{uuid.uuid4().hex}"})
            response = second.session.request(
                method.upper(), second.base_url + url, json=body, headers=headers, timeout=30
            )
            walked += 1
            assert response.status_code < 500, (method, url, response.text)
            # An id the request itself carried may be echoed ("there is no transaction
            # X"); anything else of the first ledger in the answer is a leak.
            sent = url + json.dumps(body)
            leaked = [s for s in secrets if s in response.text and s not in sent]
            assert not leaked, (method, url, response.status_code, leaked)
            if "{" in path and response.status_code != 202:
                # A path naming the first ledger's thing: it does not exist here.
                assert response.status_code in (404, 422), (method, url, response.text)
            if method == "post" and re.search(r"\{(hold_id|transaction_id)\}", path):
                assert response.status_code == 404, (method, url, response.text)
            if path.endswith("/batch"):
                statuses = [r.get("status") for r in response.json()["results"]]
                assert statuses[:2] == [404, 404], statuses
    assert walked >= len(list(operations(document)))
    assert view_of(first) == before


def requests_for(path: str, operation: dict[str, Any], first: dict[str, Any]):
    """The calls to make of one operation: each path id of the first ledger in turn."""
    ids = first["ids"]
    substitutions = {
        "hold_id": [ids["hold"]],
        "transaction_id": [ids["topup"], ids["spend"]],
        "tx_id": [ids["topup"], ids["hold"]],
        "user_id": [first["player"]],
        "event_id": [str(uuid.uuid4())],
    }
    names = re.findall(r"\{(\w+)\}", path)
    combos = [{}]
    for name in names:
        combos = [{**c, name: value} for c in combos for value in substitutions.get(name, ["x"])]
    query = ""
    parameters = [p.get("name") for p in operation.get("parameters", []) if isinstance(p, dict)]
    if "idempotency_key" in parameters:
        query = f"?idempotency_key={first['keys']['topup']}"
    for combo in combos:
        url = path
        for name, value in combo.items():
            url = url.replace("{" + name + "}", value)
        yield url + query, body_for(path, operation, first)


def body_for(path: str, operation: dict[str, Any], first: dict[str, Any]) -> Any:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return None
    body = json.loads(json.dumps(content.get("example", {})))
    if path.endswith("/batch"):
        ids = first["ids"]
        return {
            "commands": [
                {
                    "type": "capture",
                    "idempotency_key": f"b-{uuid.uuid4().hex}",
                    "hold_id": ids["hold"],
                },
                {
                    "type": "reverse",
                    "idempotency_key": f"b-{uuid.uuid4().hex}",
                    "transaction_id": ids["topup"],
                    "reason": "walk",
                },
                {
                    "type": "spend",
                    "idempotency_key": f"b-{uuid.uuid4().hex}",
                    "user_id": first["player"],
                    "asset": "GOLD_COINS",
                    "amount": 1,
                },
            ]
        }
    for field in ("user_id", "from_user_id"):
        if field in body:
            body[field] = first["player"]
    if path == "/v1/assets":
        body["code"] = f"ISO_{uuid.uuid4().hex[:8].upper()}"
    if path == "/v1/admin/ledgers":
        body["code"] = f"iso-{uuid.uuid4().hex[:8]}"
    body.pop("callback_url", None)
    return body


def test_a_worker_killed_mid_load_in_two_ledgers_loses_and_repeats_nothing_in_either(stack, second):
    """The same players topped up in two ledgers at once; partition workers SIGKILLed
    mid-load: every 202 in each ledger ends applied once, and both books reconcile."""
    import os
    import signal

    from tests.e2e.test_guarantees import Load, wait_for

    in_first, in_second = Load(stack.api, threads=6), Load(second, threads=6)
    in_second.users = in_first.users  # the same player ids: different wallets
    with in_first, in_second:
        wait_for(
            lambda: len(in_first.accepted) >= 150 and len(in_second.accepted) >= 150,
            what="load in both ledgers",
        )
        victims = stack.workers()
        for victim in victims[:2]:
            os.kill(victim.pid, signal.SIGKILL)
    wait_for(lambda: len(stack.workers()) >= len(victims), what="killed workers to come back")
    in_first.settle_and_check()
    in_second.settle_and_check()
    for api in (stack.api, second):
        report = api.reconciliation()
        assert report["ok"] is True, report
