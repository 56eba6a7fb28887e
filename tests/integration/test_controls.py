"""Player and currency controls over HTTP, against the real database: caps, the 24-hour
spend limit, expiring credits, freezes, the asset settings and the reconciliation."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text

from db.engine import connect
from db.reconciliation import reconcile
from ledger import DEFAULT_LEDGER_ID
from tests.integration.conftest import ADMIN, post
from tests.integration.helpers import drain_all, transaction
from tests.support import unique
from worker.expiry import submit_due_expiries


def new_asset(client: FlaskClient, **settings: Any) -> str:
    code = "C_" + uuid.uuid4().hex[:12].upper()
    response = post(client, "/v1/assets", {"code": code, "name": code, **settings}, None)
    assert response.status_code == 201, response.get_json()
    return code


def submit(client: FlaskClient, path: str, body: dict[str, Any]) -> str:
    response = post(client, path, body, unique("k"))
    assert response.status_code == 202, response.get_json()
    return str(response.get_json()["id"])


def topup(client: FlaskClient, user: str, asset: str, amount: int) -> str:
    return submit(
        client, "/v1/transactions/topup", {"user_id": user, "asset": asset, "amount": amount}
    )


def spend(client: FlaskClient, user: str, asset: str, amount: int) -> str:
    return submit(
        client, "/v1/transactions/spend", {"user_id": user, "asset": asset, "amount": amount}
    )


def outcome(tx_id: str) -> tuple[str, str | None]:
    found = transaction(tx_id)
    return found["status"], (found["error"] or {}).get("code")


def balance_of(client: FlaskClient, user: str, asset: str) -> dict[str, Any]:
    body = client.get(f"/v1/wallets/{user}", headers=ADMIN).get_json()
    return next(b for b in body["balances"] if b["asset"] == asset)


def backdate(tx_id: str, seconds: float) -> None:
    """Accepted `seconds` ago: the drain decides it at that instant (its created_at)."""
    with connect() as conn:
        conn.execute(
            text(
                "UPDATE transactions SET created_at = now() - make_interval(secs => :s) "
                "WHERE id = :id AND status = 'pending'"
            ),
            {"s": seconds, "id": tx_id},
        )


COMPLETED = ("completed", None)


# --- max_balance -------------------------------------------------------------------


def test_a_credit_may_reach_the_cap_exactly_but_not_pass_it(client):
    asset = new_asset(client, max_balance=100)
    user, payer = unique(), unique()
    first, at_cap = topup(client, user, asset, 60), topup(client, user, asset, 40)
    over = topup(client, user, asset, 1)
    topup(client, payer, asset, 5)
    drain_all()
    transfer_in = submit(
        client,
        "/v1/transactions/transfer",
        {"from_user_id": payer, "to_user_id": user, "asset": asset, "amount": 1},
    )
    drain_all()
    assert [outcome(t) for t in (first, at_cap)] == [COMPLETED, COMPLETED]
    assert outcome(over) == ("rejected", "balance_limit_exceeded")
    assert outcome(transfer_in) == ("rejected", "balance_limit_exceeded")
    assert balance_of(client, user, asset)["balance"] == 100
    # Debits still apply at the cap; then there is room again.
    assert outcome(spend(client, user, asset, 1)) == ("pending", None)
    again = topup(client, user, asset, 1)
    drain_all()
    assert outcome(again) == COMPLETED


# --- spend_limit_24h -----------------------------------------------------------------


def test_the_24h_limit_counts_spends_transfers_and_captures_but_not_holds(client):
    asset = new_asset(client, spend_limit_24h=100)
    user, payee = unique(), unique()
    topup(client, user, asset, 1000)
    old = spend(client, user, asset, 100)  # accepted 24 h and a second ago: out of window
    backdate(old, 24 * 3600 + 1)
    drain_all()
    spent = spend(client, user, asset, 40)
    moved = submit(
        client,
        "/v1/transactions/transfer",
        {"from_user_id": user, "to_user_id": payee, "asset": asset, "amount": 30},
    )
    hold = submit(
        client,
        "/v1/transactions/hold",
        {"user_id": user, "asset": asset, "amount": 50, "expires_in": 600},
    )
    drain_all()
    captured = submit(client, f"/v1/transactions/{hold}/capture", {"amount": 30})
    drain_all()
    over = spend(client, user, asset, 1)
    drain_all()
    assert [outcome(t) for t in (old, spent, moved, hold, captured)] == [COMPLETED] * 5
    assert outcome(over) == ("rejected", "spend_limit_exceeded")
    assert balance_of(client, user, asset)["balance"] == 1000 - 100 - 40 - 30 - 30


def test_a_capture_beyond_the_limit_is_refused_and_the_hold_stays(client):
    asset = new_asset(client, spend_limit_24h=50)
    user = unique()
    topup(client, user, asset, 500)
    hold = submit(
        client,
        "/v1/transactions/hold",
        {"user_id": user, "asset": asset, "amount": 80, "expires_in": 600},
    )
    drain_all()
    too_much = submit(client, f"/v1/transactions/{hold}/capture", {"amount": 51})
    drain_all()
    assert outcome(too_much) == ("rejected", "spend_limit_exceeded")
    assert transaction(hold)["hold_status"] == "active"
    exact = submit(client, f"/v1/transactions/{hold}/capture", {"amount": 50})
    drain_all()
    assert outcome(exact) == COMPLETED
    assert balance_of(client, user, asset)["balance"] == 450


# --- credit_lifetime -------------------------------------------------------------------


def test_wallet_shows_expiring_credits_soonest_first(client):
    asset = new_asset(client, credit_lifetime=3600)
    user = unique()
    topup(client, user, asset, 5)
    sooner = topup(client, user, asset, 7)
    backdate(sooner, 600)
    drain_all()
    expiring = balance_of(client, user, asset)["expiring"]
    assert [e["amount"] for e in expiring] == [7, 5]
    assert expiring[0]["expires_at"] < expiring[1]["expires_at"]
    plain = new_asset(client)
    topup(client, user, plain, 5)
    drain_all()
    assert "expiring" not in balance_of(client, user, plain)  # no lifetime, nothing to list


def test_expiry_under_an_active_hold_keeps_the_held_part_capturable(client):
    asset = new_asset(client, credit_lifetime=3600)
    user = unique()
    credit = topup(client, user, asset, 100)
    backdate(credit, 7200)  # its lot expired an hour ago
    hold = submit(
        client,
        "/v1/transactions/hold",
        {"user_id": user, "asset": asset, "amount": 30, "expires_in": 600},
    )
    backdate(hold, 7000)  # placed before the lot expired: it protects 30 of it
    fresh = topup(client, user, asset, 8)
    drain_all()
    late_spend = spend(client, user, asset, 9)  # the expired 70 is out of reach already
    drain_all()
    assert outcome(late_spend) == ("rejected", "insufficient_funds")

    recorded = submit_due_expiries()
    assert [r.created for r in recorded] == [True]
    assert submit_due_expiries() == []  # one pending already: skipped
    drain_all()
    expiry = transaction(str(recorded[0].row.id))
    assert (expiry["type"], expiry["status"], expiry["amount"]) == ("expiry", "completed", 70)
    assert {(e["account"], e["direction"], e["amount"]) for e in expiry["entries"]} == {
        (user, "debit", 70),
        ("@expired", "credit", 70),
    }
    wallet = balance_of(client, user, asset)
    assert (wallet["balance"], wallet["held"], wallet["available"]) == (38, 30, 8)

    captured = submit(client, f"/v1/transactions/{hold}/capture", {"amount": 20})
    drain_all()
    assert outcome(captured) == COMPLETED
    # The uncaptured 10 came back already expired: the next sweep takes it.
    wallet = balance_of(client, user, asset)
    assert (wallet["balance"], wallet["held"], wallet["available"]) == (18, 0, 18)
    again = submit_due_expiries()
    assert len(again) == 1 and again[0].created
    drain_all()
    assert transaction(str(again[0].row.id))["amount"] == 10
    assert balance_of(client, user, asset)["balance"] == 8
    assert outcome(fresh) == COMPLETED
    assert submit_due_expiries() == []
    history = client.get(f"/v1/wallets/{user}/transactions", headers=ADMIN).get_json()
    assert [t["type"] for t in history["items"]][:2] == ["expiry", "capture"]
    report = reconcile(DEFAULT_LEDGER_ID)
    assert report["ok"] is True
    expired = next(a for a in report["assets"] if a["asset"] == asset)
    assert expired["sum_of_balances"] == 0 and expired["mismatches"] == []


def test_removing_a_lifetime_forgets_the_lots(client):
    asset = new_asset(client, credit_lifetime=3600)
    user = unique()
    topup(client, user, asset, 10)
    submit(
        client,
        "/v1/transactions/hold",
        {"user_id": user, "asset": asset, "amount": 4, "expires_in": 600},
    )
    drain_all()
    response = client.patch(f"/v1/assets/{asset}", json={"credit_lifetime": None}, headers=ADMIN)
    assert response.status_code == 200 and response.get_json()["credit_lifetime"] is None
    with connect() as conn:
        rows = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM accounts a JOIN assets s ON s.id = a.asset_id "
                "        WHERE s.code = :c AND a.lots IS NOT NULL), "
                "       (SELECT count(*) FROM transactions t JOIN assets s ON s.id = t.asset_id "
                "        WHERE s.code = :c AND t.lots IS NOT NULL)"
            ),
            {"c": asset},
        ).one()
    assert tuple(rows) == (0, 0)
    assert "expiring" not in balance_of(client, user, asset)


# --- freeze --------------------------------------------------------------------------


def test_a_freeze_orders_with_the_players_commands(client):
    asset = new_asset(client)
    user = unique()
    topup(client, user, asset, 100)
    drain_all()
    before = spend(client, user, asset, 10)
    freeze = post(client, f"/v1/wallets/{user}/freeze", {"reason": "chargeback"}, unique("k"))
    assert freeze.status_code == 202
    frozen_tx = freeze.get_json()
    assert (frozen_tx["type"], frozen_tx["asset"], frozen_tx["user_id"]) == ("freeze", None, user)
    after = spend(client, user, asset, 10)
    hold = submit(
        client,
        "/v1/transactions/hold",
        {"user_id": user, "asset": asset, "amount": 5, "expires_in": 600},
    )
    credit = topup(client, user, asset, 7)
    drain_all()
    assert outcome(before) == COMPLETED
    assert outcome(frozen_tx["id"]) == COMPLETED
    assert outcome(after) == ("rejected", "wallet_frozen")
    assert outcome(hold) == ("rejected", "wallet_frozen")
    assert outcome(credit) == COMPLETED
    wallet = client.get(f"/v1/wallets/{user}", headers=ADMIN).get_json()
    assert wallet["frozen"]["reason"] == "chargeback"
    assert wallet["frozen"]["since"] == transaction(frozen_tx["id"])["created_at"]

    # A second freeze keeps the first reason; an unfreeze lets debits through again.
    post(client, f"/v1/wallets/{user}/freeze", {"reason": "other"}, unique("k"))
    unfreeze = post(client, f"/v1/wallets/{user}/unfreeze", {}, unique("k"))
    assert unfreeze.status_code == 202
    drain_all()
    restored = spend(client, user, asset, 10)
    drain_all()
    assert outcome(restored) == COMPLETED
    wallet = client.get(f"/v1/wallets/{user}", headers=ADMIN).get_json()
    assert wallet["frozen"] is None
    assert balance_of(client, user, asset)["balance"] == 100 - 10 + 7 - 10


def test_freeze_replays_like_any_command(client):
    user, key = unique(), unique("k")
    first = post(client, f"/v1/wallets/{user}/freeze", {"reason": "r"}, key)
    replay = post(client, f"/v1/wallets/{user}/freeze", {"reason": "r"}, key)
    other = post(client, f"/v1/wallets/{user}/freeze", {"reason": "s"}, key)
    assert (first.status_code, replay.status_code) == (202, 200)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json()["id"] == first.get_json()["id"]
    assert other.status_code == 422 and other.get_json()["code"] == "idempotency_key_reused"
    assert post(client, f"/v1/wallets/{user}/freeze", {"reason": "r"}, None).status_code == 400
    assert post(client, f"/v1/wallets/{user}/freeze", {}, unique("k")).status_code == 422
    assert post(
        client, "/v1/wallets/@revenue/freeze", {"reason": "r"}, unique("k")
    ).status_code in (
        404,
        422,
    )
    drain_all()
    # A player with no wallet yet is frozen all the same: their first debit is refused.
    topup(client, user, "GOLD_COINS", 5)
    debit = spend(client, user, "GOLD_COINS", 1)
    drain_all()
    assert outcome(debit) == ("rejected", "wallet_frozen")


def test_a_batch_cannot_carry_an_expiry_or_a_freeze(client):
    response = client.post(
        "/v1/transactions/batch",
        json={
            "commands": [
                {"type": t, "idempotency_key": unique("k"), "user_id": unique(), "reason": "x"}
                for t in ("expiry", "freeze")
            ]
        },
        headers=ADMIN,
    )
    assert response.status_code == 202
    assert [r["status"] for r in response.get_json()["results"]] == [422, 422]


# --- asset settings ------------------------------------------------------------------


def test_patch_changes_a_rule_for_commands_applied_after_it(client):
    asset = new_asset(client, max_balance=10)
    user = unique()
    refused = topup(client, user, asset, 11)
    drain_all()
    assert outcome(refused) == ("rejected", "balance_limit_exceeded")
    response = client.patch(f"/v1/assets/{asset}", json={"max_balance": 20}, headers=ADMIN)
    assert response.status_code == 200
    assert response.get_json() == {
        "code": asset,
        "name": asset,
        "max_balance": 20,
        "spend_limit_24h": None,
        "credit_lifetime": None,
    }
    allowed = topup(client, user, asset, 11)
    drain_all()
    assert outcome(allowed) == COMPLETED
    listed = client.get("/v1/assets", headers=ADMIN).get_json()["items"]
    assert next(a for a in listed if a["code"] == asset)["max_balance"] == 20
    # null clears it.
    client.patch(f"/v1/assets/{asset}", json={"max_balance": None}, headers=ADMIN)
    big = topup(client, user, asset, 1000)
    drain_all()
    assert outcome(big) == COMPLETED


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"max_balance": 0},
        {"max_balance": -5},
        {"max_balance": 2**53},
        {"max_balance": "5"},
        {"max_balance": 1.5},
        {"max_balance": True},
        {"spend_limit_24h": 0},
        {"credit_lifetime": []},
        {"nonsense": 1},
        [],
        "x",
    ],
)
def test_bad_patch_bodies_are_refused_and_change_nothing(client, body):
    asset = new_asset(client, max_balance=10)
    response = client.patch(f"/v1/assets/{asset}", json=body, headers=ADMIN)
    assert response.status_code == 422, response.get_json()
    assert response.headers["Content-Type"] == "application/problem+json"
    listed = client.get("/v1/assets", headers=ADMIN).get_json()["items"]
    assert next(a for a in listed if a["code"] == asset)["max_balance"] == 10


def test_patching_an_unknown_asset_is_404(client):
    response = client.patch("/v1/assets/NO_SUCH_ASSET", json={"max_balance": 5}, headers=ADMIN)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"


def test_bad_settings_at_creation_are_refused(client):
    code = "C_" + uuid.uuid4().hex[:12].upper()
    response = post(client, "/v1/assets", {"code": code, "name": "x", "credit_lifetime": 0}, None)
    assert response.status_code == 422
    assert code not in {
        a["code"] for a in client.get("/v1/assets", headers=ADMIN).get_json()["items"]
    }


# --- reconciliation ------------------------------------------------------------------


def test_reconciliation_lists_a_wallet_above_a_lowered_cap_and_stays_ok(client):
    asset = new_asset(client, max_balance=100)
    user = unique()
    topup(client, user, asset, 80)
    drain_all()
    client.patch(f"/v1/assets/{asset}", json={"max_balance": 50}, headers=ADMIN)
    report = client.get("/v1/admin/reconciliation", headers=ADMIN).get_json()
    assert report["ok"] is True
    assert {"account": user, "asset": asset, "balance": 80, "max_balance": 50} in report[
        "wallets_above_cap"
    ]
    assert report["lots_mismatches"] == [] and report["spend_window_mismatches"] == []
    refused = topup(client, user, asset, 1)
    drain_all()
    assert outcome(refused) == ("rejected", "balance_limit_exceeded")


def test_lots_left_by_an_old_rule_never_break_a_later_batch(client):
    """A drain that read a lifetime just before it was removed writes lots; the next
    rule-free batch must clear them, not trip accounts_lots_cover_available."""
    asset = new_asset(client, credit_lifetime=3600)
    user = unique()
    topup(client, user, asset, 10)
    drain_all()
    with connect() as conn:  # the lifetime gone, its lots still there (the race)
        conn.execute(
            text("UPDATE assets SET credit_lifetime_s = NULL WHERE code = :c"), {"c": asset}
        )
    later = topup(client, user, asset, 5)
    drain_all()
    assert outcome(later) == COMPLETED
    with connect() as conn:
        lots = conn.execute(
            text(
                "SELECT a.lots FROM accounts a JOIN assets s ON s.id = a.asset_id "
                "WHERE s.code = :c AND a.owner = :u"
            ),
            {"c": asset, "u": user},
        ).scalar_one()
    assert lots is None


def test_reconciliation_reports_stored_debits_the_ledger_does_not_have(client):
    asset = new_asset(client, spend_limit_24h=100)
    user = unique()
    topup(client, user, asset, 50)
    spend(client, user, asset, 10)
    drain_all()
    assert reconcile(DEFAULT_LEDGER_ID)["spend_window_mismatches"] == []
    update = (
        "UPDATE accounts a SET recent_debits = CAST(:d AS jsonb) FROM assets s "
        "WHERE s.id = a.asset_id AND s.code = :c AND a.owner = :u"
    )
    with connect() as conn:
        stored = conn.execute(
            text(
                "SELECT CAST(a.recent_debits AS text) FROM accounts a JOIN assets s "
                "ON s.id = a.asset_id WHERE s.code = :c AND a.owner = :u"
            ),
            {"c": asset, "u": user},
        ).scalar_one()
        conn.execute(
            text(update),
            {"c": asset, "u": user, "d": stored.replace('"amount": 10', '"amount": 11')},
        )
    try:
        report = reconcile(DEFAULT_LEDGER_ID)
        assert report["ok"] is False
        assert {"account": user, "asset": asset, "stored": 11, "ledger": 10} in report[
            "spend_window_mismatches"
        ]
    finally:
        with connect() as conn:
            conn.execute(text(update), {"c": asset, "u": user, "d": stored})
