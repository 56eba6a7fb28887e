"""Wallet history: whose it may be, and a system account's, in keyset pages."""

from __future__ import annotations

import contextlib
import random
import string

import pytest

from ledger import CommandType
from tests.integration.conftest import ADMIN
from tests.integration.helpers import drain_all, submit
from tests.support import unique


def history(client, owner, **query):
    return client.get(f"/v1/wallets/{owner}/transactions", query_string=query, headers=ADMIN)


def new_asset(client):
    code = "H" + "".join(random.choices(string.ascii_uppercase, k=12))
    created = client.post("/v1/assets", json={"code": code, "name": code}, headers=ADMIN)
    assert created.status_code == 201
    return code


def test_the_history_of_a_user_without_a_wallet_is_404_user_not_found(client):
    for owner in (unique("never-seen"), "@nothing"):
        response = history(client, owner)
        assert response.status_code == 404
        assert response.content_type == "application/problem+json"
        assert response.get_json()["code"] == "user_not_found"


@pytest.mark.parametrize(
    ("owner", "status", "code"),
    [
        # Control characters are refused at the edge, before any view (api/edge.py).
        ("a%00b", 400, "bad_request"),
        ("%00", 400, "bad_request"),
        ("bad%09id", 400, "bad_request"),
        ("a%20b", 404, "user_not_found"),
        ("x" * 129, 404, "user_not_found"),
        ("%C3%BC", 404, "user_not_found"),
    ],
)
def test_an_id_no_wallet_can_have_is_refused_without_a_query(
    client, monkeypatch, owner, status, code
):
    @contextlib.contextmanager
    def no_database():
        raise AssertionError("the database was asked about an impossible id")
        yield

    monkeypatch.setattr("api.wallets.autocommit", no_database)
    for path in (f"/v1/wallets/{owner}/transactions", f"/v1/wallets/{owner}"):
        response = client.get(path, headers=ADMIN)
        assert response.status_code == status, response.get_json()
        assert response.get_json()["code"] == code


def test_a_user_with_a_wallet_and_nothing_in_the_asset_has_an_empty_history(client):
    user = unique()
    submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=3)
    drain_all()
    response = history(client, user, asset=new_asset(client))
    assert response.status_code == 200
    assert response.get_json() == {"items": [], "next_cursor": None}


def test_a_user_whose_first_top_up_is_pending_has_it_in_the_history(client):
    user = unique()
    pending = submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=3)
    try:
        response = history(client, user)
        assert response.status_code == 200
        assert [t["id"] for t in response.get_json()["items"]] == [pending["id"]]
    finally:
        drain_all()


def _pages(client, owner, limit, **query):
    """Every page of a history, following next_cursor."""
    pages, cursor = [], None
    while True:
        params = {"limit": limit, **query, **({"cursor": cursor} if cursor else {})}
        response = history(client, owner, **params)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        pages.append([t["id"] for t in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


def test_a_system_account_history_lists_what_posted_to_it_newest_first(client):
    drain_all()  # nothing left from elsewhere applies after these
    asset = new_asset(client)
    user = unique()
    topups = [
        submit(CommandType.TOPUP, user_id=user, asset=asset, amount=10)["id"] for _ in range(5)
    ]
    bonus = submit(CommandType.BONUS, user_id=user, asset=asset, amount=2)["id"]
    spend = submit(CommandType.SPEND, user_id=user, asset=asset, amount=7)["id"]
    submit(CommandType.SPEND, user_id=user, asset=asset, amount=10**6)  # refused
    drain_all()
    # One wallet: its commands apply in acceptance order, so newest first is reversed.
    assert _pages(client, "@treasury", 2, asset=asset) == [
        topups[4:2:-1],
        topups[2:0:-1],
        topups[:1],
    ]
    assert _pages(client, "@promotions", 50, asset=asset) == [[bonus]]
    assert _pages(client, "@revenue", 50, asset=asset) == [[spend]]  # not the refused one
    # Without the asset filter, the newest entries are these, across every asset.
    page = history(client, "@treasury", limit=5).get_json()
    assert [t["id"] for t in page["items"]] == topups[::-1]
    item = page["items"][0]
    assert item["status"] == "completed" and item["user_id"] == user
    assert {"account": "@treasury", "direction": "debit", "amount": 10} in item["entries"]


def test_a_system_account_history_spans_every_shard(client):
    asset = new_asset(client)
    users = [unique() for _ in range(24)]  # 8 partitions: several shards of @treasury
    ids = {submit(CommandType.TOPUP, user_id=u, asset=asset, amount=1)["id"] for u in users}
    drain_all()
    pages = _pages(client, "@treasury", 7, asset=asset)
    listed = [tx_id for page in pages for tx_id in page]
    assert len(listed) == len(set(listed)) == 24 and set(listed) == ids
    assert [len(p) for p in pages] == [7, 7, 7, 3]


def test_a_history_refuses_a_cursor_of_the_other_kind(client):
    user = unique()
    for _ in range(2):
        submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=1)
    drain_all()
    user_cursor = history(client, user, limit=1).get_json()["next_cursor"]
    system_cursor = history(client, "@treasury", limit=1).get_json()["next_cursor"]
    assert user_cursor and system_cursor
    for owner, cursor in (("@treasury", user_cursor), (user, system_cursor)):
        response = history(client, owner, cursor=cursor)
        assert response.status_code == 422
        assert response.get_json()["errors"] == {"cursor": ["Not a cursor from this API."]}
