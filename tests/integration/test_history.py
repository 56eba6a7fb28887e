"""Wallet history: whose it may be."""

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


@pytest.mark.parametrize("owner", ["a%00b", "%00", "a%20b", "bad%09id", "x" * 129, "%C3%BC"])
def test_an_id_no_wallet_can_have_is_404_without_a_query(client, monkeypatch, owner):
    @contextlib.contextmanager
    def no_database():
        raise AssertionError("the database was asked about an impossible id")
        yield

    monkeypatch.setattr("api.wallets.autocommit", no_database)
    for path in (f"/v1/wallets/{owner}/transactions", f"/v1/wallets/{owner}"):
        response = client.get(path, headers=ADMIN)
        assert response.status_code == 404, response.get_json()
        assert response.get_json()["code"] == "user_not_found"


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
