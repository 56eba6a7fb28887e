"""Ledgers: one service, many titles. A ledger is an isolated book, and another ledger's
rows do not exist for a client: 404, never 403, never a side effect."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from db.engine import connect
from tests.integration.conftest import ADMIN, transaction_count
from tests.integration.helpers import drain_all
from tests.support import assert_ledger_invariants, unique


def new_ledger(client, code: str | None = None) -> str:
    code = code or f"title-{uuid.uuid4().hex[:8]}"
    response = client.post("/v1/admin/ledgers", json={"code": code, "name": code}, headers=ADMIN)
    assert response.status_code == 201, response.json
    return code


def in_ledger(code: str) -> dict[str, str]:
    return {**ADMIN, "Wallet-Ledger": code}


def add_asset(client, ledger: str, code: str = "GOLD_COINS") -> None:
    response = client.post(
        "/v1/assets", json={"code": code, "name": code.title()}, headers=in_ledger(ledger)
    )
    assert response.status_code == 201, response.json


def new_client(client, ledger: str, scopes=("submit", "read", "admin")) -> dict[str, str]:
    created = client.post(
        "/v1/admin/clients",
        json={"name": "game", "scopes": list(scopes), "ledger": ledger},
        headers=ADMIN,
    ).json
    assert created["ledger"] == ledger
    return {"Authorization": f"Bearer {created['api_key']}"}


def submit(client, headers, kind: str, body: dict, key: str | None = None):
    return client.post(
        f"/v1/transactions/{kind}",
        json=body,
        headers={**headers, "Idempotency-Key": key or unique("key")},
    )


def test_only_the_bootstrap_key_creates_and_lists_ledgers(client):
    code = new_ledger(client)
    listed = client.get("/v1/admin/ledgers", headers=ADMIN).json["items"]
    assert {"default", code} <= {ledger["code"] for ledger in listed}
    again = client.post("/v1/admin/ledgers", json={"code": code, "name": "x"}, headers=ADMIN)
    assert again.status_code == 409
    assert again.json["code"] == "ledger_exists"
    ledger_admin = new_client(client, code)
    for response in (
        client.post(
            "/v1/admin/ledgers", json={"code": unique("t"), "name": "x"}, headers=ledger_admin
        ),
        client.get("/v1/admin/ledgers", headers=ledger_admin),
    ):
        assert response.status_code == 403


@pytest.mark.parametrize("code", ["A", "a", "1abc", "has space", "x" * 33, "dé"])
def test_a_malformed_ledger_code_is_422(client, code):
    response = client.post("/v1/admin/ledgers", json={"code": code, "name": "x"}, headers=ADMIN)
    assert response.status_code == 422


def test_a_new_ledger_starts_with_no_assets(client):
    code = new_ledger(client)
    assert client.get("/v1/assets", headers=in_ledger(code)).json["items"] == []
    refused = submit(
        client, in_ledger(code), "topup", {"user_id": "p", "asset": "GOLD_COINS", "amount": 1}
    )
    assert refused.status_code == 422
    assert refused.json["code"] == "unknown_asset"


def test_the_ledger_header_is_for_the_bootstrap_key_and_names_a_real_ledger(client):
    unknown = client.get("/v1/assets", headers=in_ledger("no-such-title"))
    assert unknown.status_code == 404
    assert unknown.json["code"] == "ledger_not_found"
    own = new_ledger(client)
    other = new_ledger(client)
    key = new_client(client, own)
    assert client.get("/v1/assets", headers={**key, "Wallet-Ledger": own}).status_code == 200
    for named in (other, "default", "no-such-title"):
        response = client.get("/v1/assets", headers={**key, "Wallet-Ledger": named})
        assert response.status_code == 403
        assert response.json["code"] == "forbidden"


def test_only_the_bootstrap_key_places_a_client_in_another_ledger(client):
    own, other = new_ledger(client), new_ledger(client)
    ledger_admin = new_client(client, own)
    placed = client.post(
        "/v1/admin/clients", json={"name": "n", "scopes": ["read"]}, headers=ledger_admin
    )
    assert placed.status_code == 201
    assert placed.json["ledger"] == own  # its own ledger, when none is named
    elsewhere = client.post(
        "/v1/admin/clients",
        json={"name": "n", "scopes": ["read"], "ledger": other},
        headers=ledger_admin,
    )
    assert elsewhere.status_code == 403
    missing = client.post(
        "/v1/admin/clients",
        json={"name": "n", "scopes": ["read"], "ledger": "no-such-title"},
        headers=ADMIN,
    )
    assert missing.status_code == 404
    assert missing.json["code"] == "ledger_not_found"


def test_the_same_player_in_two_ledgers_is_two_wallets_with_two_histories(client, rings):
    first, second = new_ledger(client), new_ledger(client)
    for ledger in (first, second):
        add_asset(client, ledger)
    player = unique("same")
    submit(
        client, in_ledger(first), "topup", {"user_id": player, "asset": "GOLD_COINS", "amount": 70}
    )
    submit(
        client, in_ledger(second), "topup", {"user_id": player, "asset": "GOLD_COINS", "amount": 5}
    )
    submit(
        client, in_ledger(second), "spend", {"user_id": player, "asset": "GOLD_COINS", "amount": 6}
    )
    drain_all()
    one = client.get(f"/v1/wallets/{player}", headers=in_ledger(first)).json["balances"]
    two = client.get(f"/v1/wallets/{player}", headers=in_ledger(second)).json["balances"]
    assert [b["balance"] for b in one] == [70]
    assert [b["balance"] for b in two] == [5]  # its spend of 6 was refused: only 5 here
    history = client.get(f"/v1/wallets/{player}/transactions", headers=in_ledger(second)).json
    assert [(t["type"], t["status"]) for t in history["items"]] == [
        ("spend", "rejected"),
        ("topup", "completed"),
    ]
    assert client.get(f"/v1/wallets/{player}", headers=ADMIN).status_code == 404
    for ledger in (first, second):
        report = client.get("/v1/admin/reconciliation", headers=in_ledger(ledger)).json
        assert report["ok"] is True
        assert report["ledger"] == ledger
        assert [a["asset"] for a in report["assets"]] == ["GOLD_COINS"]


def test_one_idempotency_key_in_two_ledgers_is_two_commands(client, rings):
    first, second = new_ledger(client), new_ledger(client)
    for ledger in (first, second):
        add_asset(client, ledger)
    body = {"user_id": "p1", "asset": "GOLD_COINS", "amount": 3}
    a = submit(client, in_ledger(first), "topup", body, key="order-1")
    b = submit(client, in_ledger(second), "topup", body, key="order-1")
    assert (a.status_code, b.status_code) == (202, 202)
    assert a.json["id"] != b.json["id"]
    found = client.get("/v1/transactions?idempotency_key=order-1", headers=in_ledger(second))
    assert found.json["id"] == b.json["id"]


def test_another_ledgers_transactions_holds_and_wallets_do_not_exist(client, rings):
    """Everything of ledger A, asked for with a key of ledger B: 404, and nothing moves."""
    ledger_a = new_ledger(client)
    add_asset(client, ledger_a)
    key_a = new_client(client, ledger_a)
    player = unique("a-player")
    topup = submit(
        client, key_a, "topup", {"user_id": player, "asset": "GOLD_COINS", "amount": 100}
    )
    hold = submit(
        client,
        key_a,
        "hold",
        {"user_id": player, "asset": "GOLD_COINS", "amount": 40, "expires_in": 600},
        key="hold-a",
    )
    drain_all()
    ledger_b = new_ledger(client)
    add_asset(client, ledger_b)
    key_b = new_client(client, ledger_b)
    tx, hold_id = topup.json["id"], hold.json["id"]
    before = transaction_count()
    for path in (
        f"/v1/transactions/{tx}",
        f"/v1/transactions/{tx}?wait=1",
        f"/v1/transactions/{tx}/callbacks",
        f"/v1/transactions/{hold_id}",
        "/v1/transactions?idempotency_key=hold-a",
        f"/v1/wallets/{player}",
        f"/v1/wallets/{player}/transactions",
    ):
        response = client.get(path, headers=key_b)
        assert response.status_code == 404, (path, response.json)
    for path, body in (
        (f"/v1/transactions/{hold_id}/capture", {}),
        (f"/v1/transactions/{hold_id}/release", None),
        (f"/v1/transactions/{tx}/reverse", {"reason": "steal"}),
    ):
        response = client.post(path, json=body, headers={**key_b, "Idempotency-Key": unique()})
        assert response.status_code == 404, (path, response.json)
        assert response.json["code"] == "not_found"
    batch = client.post(
        "/v1/transactions/batch",
        json={
            "commands": [
                {"type": "capture", "idempotency_key": unique(), "hold_id": hold_id},
                {
                    "type": "reverse",
                    "idempotency_key": unique(),
                    "transaction_id": tx,
                    "reason": "x",
                },
                {
                    "type": "topup",
                    "idempotency_key": unique(),
                    "user_id": "b1",
                    "asset": "GOLD_COINS",
                    "amount": 1,
                },
            ]
        },
        headers=key_b,
    ).json["results"]
    assert [r["status"] for r in batch] == [404, 404, "pending"]
    drain_all()
    assert transaction_count() == before + 1
    assert client.get(f"/v1/transactions/{hold_id}", headers=key_a).json["hold_status"] == "active"
    wallet = client.get(f"/v1/wallets/{player}", headers=key_a).json["balances"][0]
    assert (wallet["balance"], wallet["held"]) == (100, 40)


def test_clients_of_one_ledger_share_its_wallets_and_transactions(client, rings):
    ledger = new_ledger(client)
    add_asset(client, ledger)
    match_server, settlement = new_client(client, ledger), new_client(client, ledger)
    player = unique()
    submit(client, match_server, "topup", {"user_id": player, "asset": "GOLD_COINS", "amount": 50})
    hold = submit(
        client,
        match_server,
        "hold",
        {"user_id": player, "asset": "GOLD_COINS", "amount": 20, "expires_in": 600},
    ).json
    drain_all()
    assert client.get(f"/v1/transactions/{hold['id']}", headers=settlement).status_code == 200
    capture = client.post(
        f"/v1/transactions/{hold['id']}/capture",
        json={"amount": 15},
        headers={**settlement, "Idempotency-Key": unique()},
    )
    assert capture.status_code == 202
    drain_all()
    balance = client.get(f"/v1/wallets/{player}", headers=match_server).json["balances"][0]
    assert (balance["balance"], balance["held"]) == (35, 0)


def test_the_database_refuses_rows_that_mix_ledgers(client, rings):
    ledger = new_ledger(client)
    add_asset(client, ledger)
    with connect() as conn:
        other_asset = conn.execute(
            text(
                "SELECT a.id FROM assets a JOIN ledgers l ON l.id = a.ledger_id WHERE l.code = :c"
            ),
            {"c": ledger},
        ).scalar_one()
    # An account of the default ledger on another ledger's asset.
    with pytest.raises(IntegrityError), connect() as conn:
        conn.execute(
            text("INSERT INTO accounts (ledger_id, owner, asset_id) VALUES (1, 'mixed', :a)"),
            {"a": other_asset},
        )
    # A row that forgets its ledger does not land in `default`: there is no default.
    with pytest.raises(IntegrityError), connect() as conn:
        conn.execute(
            text("INSERT INTO accounts (owner, asset_id) VALUES ('forgot', :a)"), {"a": other_asset}
        )


def test_1000_spends_of_1_against_100_in_each_of_two_ledgers_complete_100_times_each(client, rings):
    """The overspend race, run in two ledgers at once, on the same player id."""
    from api import intake
    from db.clients import BOOTSTRAP_CLIENT_ID, client_by_id
    from db.ledgers import ledgers
    from ledger import CommandType
    from tests.integration.helpers import Drainers

    codes = [new_ledger(client), new_ledger(client)]
    for code in codes:
        add_asset(client, code)
    player = unique("racer")
    with connect() as conn:
        bootstrap = client_by_id(conn, BOOTSTRAP_CLIENT_ID)
    assert bootstrap is not None
    actors = []
    for code in codes:
        found = ledgers.by_code(code)
        assert found is not None
        actors.append(type(bootstrap)(**{**bootstrap.__dict__, "ledger_id": found.id}))
    for actor in actors:
        intake.submit(
            actor,
            intake.Submission(
                CommandType.TOPUP,
                unique(),
                {"user_id": player, "asset": "GOLD_COINS", "amount": 100},
            ),
        )
    drain_all()
    ids: list[str] = []
    lock = threading.Lock()

    def spend(actor) -> None:
        for _ in range(50):
            accepted = intake.submit(
                actor,
                intake.Submission(
                    CommandType.SPEND,
                    unique(),
                    {"user_id": player, "asset": "GOLD_COINS", "amount": 1},
                ),
            )
            with lock:
                ids.append(accepted.resource["id"])

    with Drainers(set(range(8)), threads=2):
        threads = [threading.Thread(target=spend, args=(a,)) for a in actors for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    with connect() as conn:
        rows = conn.execute(
            text(
                "SELECT ledger_id, status, error_code FROM transactions "
                "WHERE id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"ids": ids},
        ).all()
    counts = Counter((r.ledger_id, r.status, r.error_code) for r in rows)
    for actor in actors:
        assert counts[(actor.ledger_id, "completed", None)] == 100
        assert counts[(actor.ledger_id, "rejected", "insufficient_funds")] == 900
    assert_ledger_invariants()
