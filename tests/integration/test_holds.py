"""The hold state machine: active -> captured | released | expired, strictly."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import text

from db.engine import connect
from ledger import CommandType
from ledger.scheduling import HOLD_EXPIRY_GRACE
from tests.integration.helpers import drain_all, submit, transaction, wallet
from tests.support import unique


def funded(amount: int = 100) -> str:
    user = unique()
    submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=amount)
    return user


def hold(user: str, amount: int, expires_in: int = 300) -> str:
    return submit(
        CommandType.HOLD, user_id=user, asset="GOLD_COINS", amount=amount, expires_in=expires_in
    )["id"]


def capture(hold_id: str, amount: int | None = None) -> str:
    fields = {"hold_id": uuid.UUID(hold_id)}
    if amount is not None:
        fields["amount"] = amount
    return submit(CommandType.CAPTURE, **fields)["id"]


def release(hold_id: str) -> str:
    return submit(CommandType.RELEASE, hold_id=uuid.UUID(hold_id))["id"]


def test_a_hold_reserves_and_spends_cannot_eat_into_it(rings):
    user = funded(100)
    h = hold(user, 70)
    eat = submit(CommandType.SPEND, user_id=user, asset="GOLD_COINS", amount=31)["id"]
    fits = submit(CommandType.SPEND, user_id=user, asset="GOLD_COINS", amount=30)["id"]
    second_hold = hold(user, 1)
    drain_all()
    applied = transaction(h)
    assert applied["status"] == "completed" and applied["hold_status"] == "active"
    assert applied["entries"] == []
    assert transaction(eat)["error"]["code"] == "insufficient_funds"
    assert transaction(fits)["status"] == "completed"
    assert transaction(second_hold)["error"]["code"] == "insufficient_funds"
    assert wallet(user) | {"updated_at": None} == {
        "asset": "GOLD_COINS",
        "balance": 70,
        "held": 70,
        "available": 0,
        "updated_at": None,
    }


def test_partial_capture_takes_part_and_releases_the_rest(rings):
    user = funded(100)
    h = hold(user, 60)
    c = capture(h, 25)
    drain_all()
    captured = transaction(c)
    assert captured["status"] == "completed"
    assert captured["amount"] == 25 and captured["hold_id"] == h
    assert captured["entries"][1] == {"account": "@revenue", "direction": "credit", "amount": 25}
    assert transaction(h)["hold_status"] == "captured"
    assert (wallet(user)["balance"], wallet(user)["held"]) == (75, 0)


def test_capture_without_amount_takes_the_whole_hold(rings):
    user = funded(100)
    h = hold(user, 60)
    c = capture(h)
    drain_all()
    assert transaction(c)["amount"] == 60
    assert wallet(user)["balance"] == 40


def test_double_release_and_capture_after_release_are_hold_not_active(rings):
    user = funded(100)
    h = hold(user, 50)
    first, second, late_capture = release(h), release(h), capture(h)
    drain_all()
    assert transaction(first)["status"] == "completed"
    assert transaction(first)["amount"] == 50
    for refused in (second, late_capture):
        assert transaction(refused)["error"]["code"] == "hold_not_active"
        assert transaction(refused)["entries"] == []
    assert transaction(h)["hold_status"] == "released"
    assert wallet(user)["held"] == 0 and wallet(user)["balance"] == 100


def test_a_hold_expires_and_a_later_capture_is_hold_not_active(rings):
    user = funded(100)
    h = hold(user, 40, expires_in=1)
    drain_all()
    assert wallet(user)["held"] == 40
    time.sleep(1.2)
    drain_all()  # expired, but within the grace: a capture accepted in time may still come
    assert transaction(h)["hold_status"] == "active"
    time.sleep(HOLD_EXPIRY_GRACE.total_seconds())
    drain_all()  # what beat's sweeper triggers: the drain expires due holds
    assert transaction(h)["hold_status"] == "expired"
    assert wallet(user)["held"] == 0
    late = capture(h)
    drain_all()
    assert transaction(late)["error"]["code"] == "hold_not_active"
    assert wallet(user)["balance"] == 100


def test_a_capture_accepted_after_expiry_is_refused_even_before_the_sweep(rings):
    user = funded(100)
    h = hold(user, 40, expires_in=1)
    drain_all()
    time.sleep(1.2)
    late = capture(h)  # accepted after expires_at; no drain ran in between
    drain_all()
    assert transaction(late)["error"]["code"] == "hold_not_active"
    assert transaction(h)["hold_status"] == "expired"


def test_capture_of_more_than_the_hold_is_422_and_of_a_non_hold_404_or_422(client):
    from tests.integration.conftest import ADMIN, transaction_count

    user = funded(100)
    h = hold(user, 10)
    before = transaction_count()
    too_much = client.post(
        f"/v1/transactions/{h}/capture",
        json={"amount": 11},
        headers={**ADMIN, "Idempotency-Key": unique()},
    )
    assert too_much.status_code == 422 and "amount" in too_much.get_json()["errors"]
    unknown = client.post(
        f"/v1/transactions/{uuid.uuid4()}/release",
        headers={**ADMIN, "Idempotency-Key": unique()},
    )
    assert unknown.status_code == 404
    topup = submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=1)["id"]
    before = transaction_count()
    not_a_hold = client.post(
        f"/v1/transactions/{topup}/capture", headers={**ADMIN, "Idempotency-Key": unique()}
    )
    assert not_a_hold.status_code == 422 and not_a_hold.get_json()["code"] == "not_a_hold"
    assert transaction_count() == before
    drain_all()


def test_held_funds_reconcile_with_active_holds(rings):
    user = funded(100)
    hold(user, 10)
    hold(user, 20)
    drain_all()
    with connect() as conn:
        active = conn.execute(
            text(
                "SELECT sum(amount) FROM transactions WHERE user_id = :u AND hold_status = 'active'"
            ),
            {"u": user},
        ).scalar_one()
    assert active == wallet(user)["held"] == 30
