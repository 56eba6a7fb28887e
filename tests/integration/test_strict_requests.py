"""Requests that are ambiguous or hostile are refused whole, before anything is written.

Duplicate keys, nesting beyond 64 levels, control characters in the path or query, a
batch item whose key is not a string; and the short memory of unknown API keys that
keeps a flood of them off the database.
"""

from __future__ import annotations

import json

import pytest

from api import auth
from tests.integration.conftest import ADMIN, transaction_count

TOPUP = {"user_id": "strict-1", "asset": "GOLD_COINS", "amount": 1}


@pytest.fixture
def unchanged(client):
    before = transaction_count()
    yield
    assert transaction_count() == before


def raw_post(client, path, data: bytes, key: str = "strict-key"):
    return client.post(
        path,
        data=data,
        headers={**ADMIN, "Idempotency-Key": key, "Content-Type": "application/json"},
    )


def nested(depth: int) -> object:
    """`depth` levels of containers, the outermost being level 1."""
    value: object = []
    for level in range(depth - 1):
        value = [value] if level % 2 else {"n": value}
    return value


def test_duplicate_keys_are_400_invalid_json(client, unchanged):
    response = raw_post(
        client,
        "/v1/transactions/topup",
        b'{"user_id": "strict-1", "asset": "GOLD_COINS", "amount": 1, "amount": 5}',
    )
    assert response.status_code == 400
    assert response.json["code"] == "invalid_json"
    assert "amount" in response.json["detail"]


def test_duplicate_keys_deep_inside_metadata_are_400_too(client, unchanged):
    response = raw_post(
        client,
        "/v1/transactions/topup",
        b'{"user_id": "strict-1", "asset": "GOLD_COINS", "amount": 1,'
        b' "metadata": {"order": {"id": 1, "id": 2}}}',
    )
    assert response.status_code == 400
    assert response.json["code"] == "invalid_json"


def test_a_body_nested_64_levels_deep_is_parsed(client):
    body = {**TOPUP, "metadata": {"deep": nested(62)}}  # body 1, metadata 2, then 62
    response = raw_post(client, "/v1/transactions/topup", json.dumps(body).encode(), "deep-64")
    assert response.status_code == 202, response.json


@pytest.mark.parametrize("depth", [63, 1000, 100_000])
def test_a_body_nested_deeper_than_64_levels_is_400_invalid_json(client, unchanged, depth):
    body = {**TOPUP, "metadata": {"deep": "X"}}
    data = json.dumps(body).replace('"X"', "[" * depth + "]" * depth).encode()
    response = raw_post(client, "/v1/transactions/topup", data)
    assert response.status_code == 400
    assert response.json["code"] == "invalid_json"


@pytest.mark.parametrize("key", [5, 1.5, ["k"], {"k": 1}, True, None])
def test_a_batch_item_with_a_key_that_is_not_a_string_fails_alone(client, key):
    before = transaction_count()
    response = client.post(
        "/v1/transactions/batch",
        json={
            "commands": [
                {"type": "topup", "idempotency_key": key, **TOPUP},
                {"type": "topup", "idempotency_key": f"strict-batch-{key!r}", **TOPUP},
            ]
        },
        headers=ADMIN,
    )
    assert response.status_code == 202
    bad, good = response.json["results"]
    assert bad["status"] == 400
    assert bad["code"] == "idempotency_key_missing"
    assert good["status"] == "pending"
    assert transaction_count() == before + 1


@pytest.mark.parametrize(
    "target",
    [
        "/v1/transactions?idempotency_key=%00",
        "/v1/transactions?idempotency_key=a%0Ab",
        "/v1/wallets/a%00b/transactions",
        "/v1/wallets/a%00b",
        "/v1/wallets/alice/transactions?asset=GOLD%00",
    ],
)
def test_control_characters_in_path_or_query_are_400_bad_request(client, target):
    response = client.get(target, headers=ADMIN)
    assert response.status_code == 400
    assert response.json["code"] == "bad_request"
    assert response.content_type == "application/problem+json"


def test_a_control_character_in_a_header_is_400(client, unchanged):
    response = client.post(
        "/v1/transactions/topup",
        json=TOPUP,
        headers={**ADMIN, "Idempotency-Key": "ok", "X-Game-Session": "a\x01b"},
    )
    assert response.status_code == 400
    assert response.json["code"] == "bad_request"


def test_a_request_id_is_echoed_when_sane_and_made_up_otherwise(client):
    sent = client.get("/healthz", headers={"X-Request-Id": "match-42:req-7"})
    assert sent.headers["X-Request-Id"] == "match-42:req-7"
    for insane in ("", "x" * 129, "two words", "ü"):
        made = client.get("/v1/nowhere", headers={"X-Request-Id": insane})
        assert made.status_code == 404
        assert made.headers["X-Request-Id"] not in ("", insane)
    assert client.get("/v1/assets").headers["X-Request-Id"]  # a 401 carries one too


def test_unknown_keys_are_remembered_briefly_and_cost_one_query(client, monkeypatch):
    looked_up: list[str] = []
    original = auth._by_hash

    def counting(key_hash: str):
        looked_up.append(key_hash)
        return original(key_hash)

    monkeypatch.setattr(auth, "_by_hash", counting)
    auth.clear_cache()
    for _ in range(20):
        response = client.get("/v1/assets", headers={"Authorization": "Bearer wk_guess_1"})
        assert response.status_code == 401
    assert len(looked_up) == 1
    client.get("/v1/assets", headers={"Authorization": "Bearer wk_guess_2"})
    assert len(looked_up) == 2


def test_a_key_created_after_a_failed_guess_of_another_works_at_once(client):
    client.get("/v1/assets", headers={"Authorization": "Bearer wk_someone_else"})
    created = client.post(
        "/v1/admin/clients", json={"name": "fresh", "scopes": ["read"]}, headers=ADMIN
    ).json
    response = client.get("/v1/assets", headers={"Authorization": f"Bearer {created['api_key']}"})
    assert response.status_code == 200
