"""Reversals: compensating entries along the original path, at most once."""

from __future__ import annotations

import uuid

import pytest

from ledger import CommandType
from tests.integration.conftest import ADMIN, transaction_count
from tests.integration.helpers import (
    balance,
    drain_all,
    submit,
    transaction,
    users_in_distinct_partitions,
)
from tests.support import unique


def reverse(tx_id: str, reason: str = "refund") -> str:
    return submit(CommandType.REVERSE, transaction_id=uuid.UUID(tx_id), reason=reason)["id"]


def topup(user: str, amount: int) -> str:
    return submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=amount)["id"]


def test_a_spend_reversed_twice_moves_money_back_once(rings):
    user = unique()
    topup(user, 100)
    spend = submit(CommandType.SPEND, user_id=user, asset="GOLD_COINS", amount=30)["id"]
    first, second = reverse(spend), reverse(spend, "again")
    drain_all()
    done = transaction(first)
    assert done["status"] == "completed"
    assert done["reverses"] == spend and done["amount"] == 30
    assert done["entries"] == [
        {"account": user, "direction": "credit", "amount": 30},
        {"account": "@revenue", "direction": "debit", "amount": 30},
    ]
    assert transaction(second)["error"]["code"] == "already_reversed"
    original = transaction(spend)
    assert original["reversed_by"] == first
    assert len(original["entries"]) == 2  # the original keeps its entries
    assert balance(user) == 100


def test_a_reversal_that_would_overdraw_is_insufficient_funds(rings):
    user = unique()
    credit = topup(user, 100)
    submit(CommandType.SPEND, user_id=user, asset="GOLD_COINS", amount=80)
    refused = reverse(credit, "chargeback")
    drain_all()
    assert transaction(refused)["error"]["code"] == "insufficient_funds"
    assert "reversed_by" not in transaction(credit)
    assert balance(user) == 20


def test_a_transfer_reversal_takes_back_from_the_payee(rings):
    payer, payee = users_in_distinct_partitions(2)
    topup(payer, 50)
    tx = submit(
        CommandType.TRANSFER, from_user_id=payer, to_user_id=payee, asset="GOLD_COINS", amount=20
    )["id"]
    back = reverse(tx, "fraud")
    drain_all()
    assert transaction(back)["status"] == "completed"
    assert (balance(payer), balance(payee)) == (50, 0)


def test_a_capture_reversal_refunds_the_captured_part(rings):
    user = unique()
    topup(user, 100)
    hold = submit(CommandType.HOLD, user_id=user, asset="GOLD_COINS", amount=40, expires_in=60)[
        "id"
    ]
    capture = submit(CommandType.CAPTURE, hold_id=uuid.UUID(hold), amount=15)["id"]
    drain_all()
    refund = reverse(capture)
    drain_all()
    assert transaction(refund)["amount"] == 15
    assert balance(user) == 100


def test_a_rejected_transaction_cannot_be_reversed_and_nothing_moves(client, rings):
    user = unique()
    topup(user, 5)
    rejected = submit(CommandType.SPEND, user_id=user, asset="GOLD_COINS", amount=6)["id"]
    drain_all()
    before = transaction_count()
    response = client.post(
        f"/v1/transactions/{rejected}/reverse",
        json={"reason": "oops"},
        headers={**ADMIN, "Idempotency-Key": unique()},
    )
    assert response.status_code == 422
    assert response.get_json()["code"] == "not_reversible"
    assert transaction_count() == before
    assert balance(user) == 5


def test_reversing_a_still_pending_original_that_is_then_rejected_is_rejected(rings):
    user = unique()
    topup(user, 5)
    doomed = submit(CommandType.SPEND, user_id=user, asset="GOLD_COINS", amount=6)["id"]
    early = reverse(doomed)  # accepted while the spend is pending: decided when applied
    drain_all()
    assert transaction(doomed)["status"] == "rejected"
    assert transaction(early)["error"]["code"] == "not_reversible"
    assert balance(user) == 5


@pytest.mark.parametrize("kind", ["hold", "release"])
def test_holds_and_releases_are_not_reversible(client, rings, kind):
    user = unique()
    topup(user, 50)
    hold = submit(CommandType.HOLD, user_id=user, asset="GOLD_COINS", amount=10, expires_in=60)[
        "id"
    ]
    target = hold if kind == "hold" else submit(CommandType.RELEASE, hold_id=uuid.UUID(hold))["id"]
    drain_all()
    response = client.post(
        f"/v1/transactions/{target}/reverse",
        json={"reason": "x"},
        headers={**ADMIN, "Idempotency-Key": unique()},
    )
    assert response.status_code == 422 and response.get_json()["code"] == "not_reversible"


def test_reversal_needs_the_admin_scope(client):
    created = client.post(
        "/v1/admin/clients", json={"name": "game", "scopes": ["submit", "read"]}, headers=ADMIN
    ).get_json()
    user = unique()
    tx = topup(user, 5)
    response = client.post(
        f"/v1/transactions/{tx}/reverse",
        json={"reason": "x"},
        headers={"Authorization": f"Bearer {created['api_key']}", "Idempotency-Key": unique()},
    )
    assert response.status_code == 403
    drain_all()
