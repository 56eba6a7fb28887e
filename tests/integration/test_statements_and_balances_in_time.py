"""Statements and balances in time, over HTTP against the real database.

A statement's closing balance is the wallet's balance; `?at=` an entry's instant is
that entry's balance after; windows that meet tile the history; CSV says what JSON
says; bad requests are problem+json and change nothing; another ledger's wallet does
not exist.
"""

from __future__ import annotations

import csv
import io
import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from db import reads
from ledger import CommandType
from tests.integration.conftest import ADMIN, transaction_count
from tests.integration.helpers import (
    drain_all,
    submit,
    transaction,
    users_in_distinct_partitions,
)
from tests.integration.test_ledgers import add_asset, in_ledger, new_ledger
from tests.support import unique

MICRO = timedelta(microseconds=1)


def at(client, user, instant, headers=ADMIN):
    return client.get(f"/v1/wallets/{user}", query_string={"at": instant}, headers=headers)


def balance_at(client, user, instant, asset="GOLD_COINS"):
    response = at(client, user, instant)
    assert response.status_code == 200, response.get_json()
    return next(b for b in response.get_json()["balances"] if b["asset"] == asset)["balance"]


def statement(client, user, headers=ADMIN, **query):
    query.setdefault("asset", "GOLD_COINS")
    return client.get(f"/v1/wallets/{user}/statement", query_string=query, headers=headers)


def statement_json(client, user, **query):
    response = statement(client, user, **query)
    assert response.status_code == 200, response.get_json()
    assert response.content_type == "application/json"
    return response.get_json()


def parse(instant: str) -> datetime:
    return datetime.fromisoformat(instant)


def iso(instant: datetime) -> str:
    return reads.iso_exact(instant)


@pytest.fixture
def history(rings):
    """A player with top-ups, spends, a transfer out and in, a hold and its capture, a
    reversal; several of them applied in one batch, the transfer in by another
    partition. Returns (player, payee)."""
    user, other = users_in_distinct_partitions(2)
    gold = {"asset": "GOLD_COINS"}
    submit(CommandType.TOPUP, user_id=user, amount=1000, **gold)
    spend = submit(CommandType.SPEND, user_id=user, amount=100, **gold)["id"]
    submit(CommandType.TRANSFER, from_user_id=user, to_user_id=other, amount=200, **gold)
    submit(CommandType.TOPUP, user_id=other, amount=500, **gold)
    submit(CommandType.TRANSFER, from_user_id=other, to_user_id=user, amount=50, **gold)
    hold = submit(CommandType.HOLD, user_id=user, amount=300, expires_in=600, **gold)["id"]
    submit(CommandType.CAPTURE, hold_id=uuid.UUID(hold), amount=120)
    submit(CommandType.BONUS, user_id=user, amount=7, **gold)
    drain_all()
    submit(CommandType.REVERSE, transaction_id=uuid.UUID(spend), reason="refund")
    submit(CommandType.SPEND, user_id=user, amount=1, **gold)
    drain_all()
    return user, other


def test_at_each_entrys_instant_the_balance_is_that_entrys_balance_after(client, history):
    user, _ = history
    found = statement_json(client, user)
    types = [entry["type"] for entry in found["entries"]]
    assert types == [
        "topup",
        "spend",
        "transfer",
        "transfer",
        "capture",
        "bonus",
        "reverse",
        "spend",
    ]
    assert [entry["amount"] for entry in found["entries"]] == [
        1000,
        -100,
        -200,
        50,
        -120,
        7,
        100,
        -1,
    ]
    instants = [parse(entry["at"]) for entry in found["entries"]]
    assert instants == sorted(set(instants)), "instants are distinct and rising"
    previous = found["opening_balance"]
    for entry, instant in zip(found["entries"], instants, strict=True):
        assert balance_at(client, user, entry["at"]) == entry["balance_after"]
        assert balance_at(client, user, iso(instant - MICRO)) == previous
        previous = entry["balance_after"]
        # The instant is the transaction's completed_at, shown there exactly: asking
        # ?at= its completed_at gives the balance after it too.
        shown = transaction(entry["transaction_id"])["completed_at"]
        assert parse(shown) == instant
        assert balance_at(client, user, shown) == entry["balance_after"]


def test_the_closing_balance_is_the_wallets_balance(client, history):
    for user in history:
        found = statement_json(client, user)
        wallet = client.get(f"/v1/wallets/{user}", headers=ADMIN).get_json()
        gold = next(b for b in wallet["balances"] if b["asset"] == "GOLD_COINS")
        assert found["opening_balance"] == 0 and found["from"] is None
        assert found["closing_balance"] == gold["balance"]
        assert found["entries"][-1]["balance_after"] == gold["balance"]
        # ?at= now agrees as well.
        assert balance_at(client, user, found["to"]) == gold["balance"]
    assert (
        statement_json(client, history[0])["closing_balance"]
        == 1000 - 100 - 200 + 50 - 120 + 7 + 100 - 1
    )


def test_windows_that_meet_tile_the_history(client, history):
    user, _ = history
    whole = statement_json(client, user)
    instants = [parse(entry["at"]) for entry in whole["entries"]]
    end = parse(whole["to"])
    # Cut at an entry's own instant (it belongs to the later window), between entries,
    # and at the very start: each window's closing balance is the next one's opening.
    cuts = [instants[0] - timedelta(seconds=5), instants[2], instants[4] + MICRO, instants[6]]
    windows = [(cuts[i], cuts[i + 1]) for i in range(len(cuts) - 1)] + [(cuts[-1], end)]
    pieces = [statement_json(client, user, **{"from": iso(a), "to": iso(b)}) for a, b in windows]
    assert pieces[0]["opening_balance"] == 0
    for before, after in itertools.pairwise(pieces):
        assert before["closing_balance"] == after["opening_balance"]
    assert pieces[-1]["closing_balance"] == whole["closing_balance"]
    assert [e for piece in pieces for e in piece["entries"]] == whole["entries"]
    assert pieces[1]["entries"][0]["at"] == whole["entries"][2]["at"]
    # A window opening in the middle: its opening is the balance just before it.
    middle = statement_json(client, user, **{"from": iso(instants[3])})
    assert middle["opening_balance"] == whole["entries"][2]["balance_after"]
    assert middle["entries"] == whole["entries"][3:]


def test_the_csv_statement_says_what_the_json_says(client, history):
    user, _ = history
    start = iso(datetime.now(UTC) - timedelta(hours=1))
    end = iso(datetime.now(UTC) + timedelta(seconds=1))
    query = {"from": start, "to": end}
    found = statement_json(client, user, **query)
    response = statement(client, user, headers={**ADMIN, "Accept": "text/csv"}, **query)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["transaction_id", "type", "amount", "balance_after", "at"]
    assert rows[1] == ["", "opening_balance", "", str(found["opening_balance"]), found["from"]]
    assert rows[-1] == ["", "closing_balance", "", str(found["closing_balance"]), found["to"]]
    assert rows[2:-1] == [
        [e["transaction_id"], e["type"], str(e["amount"]), str(e["balance_after"]), e["at"]]
        for e in found["entries"]
    ]
    # A client preferring CSV gets it; one taking anything gets JSON.
    preferring = {**ADMIN, "Accept": "text/csv, application/json;q=0.5"}
    assert statement(client, user, headers=preferring, **query).get_data() == response.get_data()
    anything = statement(client, user, headers={**ADMIN, "Accept": "*/*"}, **query)
    assert anything.get_json() == found


def test_a_wallet_at_an_instant_before_its_first_entry_shows_zero(client, history):
    user, _ = history
    first = statement_json(client, user)["entries"][0]
    body = at(client, user, iso(parse(first["at"]) - timedelta(days=365))).get_json()
    assert body["balances"] == [{"asset": "GOLD_COINS", "balance": 0}]
    assert body["user_id"] == user and "held" not in body["balances"][0]


def test_a_window_longer_than_the_cap_is_refused_and_shorter_ones_answer(
    client, history, monkeypatch
):
    user, _ = history
    whole = statement_json(client, user)
    monkeypatch.setattr(reads, "STATEMENT_MAX_ENTRIES", 4)
    response = statement(client, user)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert response.get_json()["code"] == "window_too_large"
    cut = whole["entries"][4]["at"]
    first = statement_json(client, user, to=cut)
    second = statement_json(client, user, **{"from": cut})
    assert first["entries"] + second["entries"] == whole["entries"]


BAD_AT = [
    "yesterday",
    "2026-11-20T10:00:00",  # no offset
    "2026-11-20",
    "2026-13-01T00:00:00Z",
    "",
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
]


@pytest.mark.parametrize("instant", BAD_AT)
def test_a_bad_instant_is_422_and_changes_nothing(client, history, instant):
    user, _ = history
    before = transaction_count()
    response = at(client, user, instant)
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    assert response.get_json()["code"] == "validation_error"
    assert "at" in response.get_json()["errors"]
    assert transaction_count() == before


def test_an_instant_in_the_future_shows_what_is_applied_so_far(client, history):
    user = history[0]
    response = at(client, user, iso(datetime.now(UTC) + timedelta(days=5)))
    assert response.status_code == 200, response.get_json()
    now = client.get(f"/v1/wallets/{user}", headers=ADMIN).get_json()["balances"]
    assert [(b["asset"], b["balance"]) for b in response.get_json()["balances"]] == [
        (b["asset"], b["balance"]) for b in now
    ]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "not-a-time"}, "from"),
        ({"to": "2026-11-20T10:00:00"}, "to"),
        ({"to": "9999-12-31T23:59:59-01:00"}, "to"),  # after year 9999 in UTC
        ({"from": "2026-11-20T10:00:00Z", "to": "2026-11-20T10:00:00Z"}, "to"),
        ({"from": "2026-11-20T11:00:00Z", "to": "2026-11-20T10:00:00+00:00"}, "to"),
        ({"from": "2999-01-01T00:00:00Z"}, "from"),  # after the default `to`, now
        ({"asset": "gold"}, "asset"),
        ({"asset": None}, "asset"),
    ],
)
def test_a_bad_window_or_asset_is_422_and_changes_nothing(client, history, query, field):
    user, _ = history
    before = transaction_count()
    if query.get("asset", "x") is None:
        response = client.get(f"/v1/wallets/{user}/statement", headers=ADMIN)
    else:
        response = statement(client, user, **query)
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    assert response.get_json()["code"] == "validation_error"
    assert field in response.get_json()["errors"]
    assert transaction_count() == before


def test_an_unknown_asset_is_422_unknown_asset(client, history):
    response = statement(client, history[0], asset="NO_SUCH_ASSET")
    assert response.status_code == 422
    assert response.get_json()["code"] == "unknown_asset"


def test_an_unknown_user_or_a_wallet_of_another_asset_is_404(client, history):
    now = iso(datetime.now(UTC))
    for response in (
        statement(client, unique("nobody")),
        statement(client, history[0], asset="DIAMONDS"),
        at(client, unique("nobody"), now),
        at(client, "a b", now),
        statement(client, "a b"),
    ):
        assert response.status_code == 404, response.get_json()
        assert response.content_type == "application/problem+json"
        assert response.get_json()["code"] == "user_not_found"


def test_an_accept_neither_json_nor_csv_is_406(client, history):
    for accept in ("application/xml", "text/html", "image/png;q=1, text/plain"):
        response = statement(client, history[0], headers={**ADMIN, "Accept": accept})
        assert response.status_code == 406
        assert response.content_type == "application/problem+json"
        assert response.get_json()["code"] == "not_acceptable"


def test_system_accounts_are_refused_clearly(client, history):
    now = iso(datetime.now(UTC))
    for response in (at(client, "@treasury", now), statement(client, "@revenue")):
        assert response.status_code == 422
        assert response.get_json()["code"] == "validation_error"
        assert "user_id" in response.get_json()["errors"]
    # The plain read still works.
    assert client.get("/v1/wallets/@treasury", headers=ADMIN).status_code == 200


def test_another_ledgers_wallet_is_invisible(client, history):
    user, _ = history
    other = new_ledger(client)
    add_asset(client, other)
    headers = in_ledger(other)
    now = iso(datetime.now(UTC))
    for response in (at(client, user, now, headers), statement(client, user, headers)):
        assert response.status_code == 404
        assert response.get_json()["code"] == "user_not_found"
