"""Text PostgreSQL cannot store (NUL, unpaired surrogates) is refused with a 422, not
failed on with a 500."""

from __future__ import annotations

import pytest

from tests.integration.conftest import ADMIN
from tests.integration.helpers import (
    drain_all,
)
from tests.support import unique


def test_a_nul_character_is_a_422_not_a_500(client):
    for body in (
        '{"user_id": "u", "asset": "GOLD_COINS", "amount": 1, "metadata": {"note": "a\\u0000b"}}',
        '{"user_id": "u", "asset": "GOLD_COINS", "amount": 1, "item_id": "\\u0000"}',
        '{"user_id": "u", "asset": "GOLD_COINS", "amount": 1, "metadata": {"k\\u0000": 1}}',
    ):
        response = client.post(
            "/v1/transactions/spend", data=body, headers={**ADMIN, "Idempotency-Key": unique()}
        )
        assert response.status_code == 422, response.get_json()
        assert response.get_json()["code"] == "validation_error"


@pytest.mark.parametrize("raw", ['"\\ud800"', '"a\\udfffb"'])
def test_unpaired_surrogates_are_refused_with_422(client, raw):
    """Unstorable in PostgreSQL: refused when the body is read, like malformed JSON (a
    batch that holds one is refused whole, and nothing is recorded), never a 500."""
    body = '{"user_id": "u1", "asset": "GOLD_COINS", "amount": 1, "reason": ' + raw + "}"
    single = client.post(
        "/v1/transactions/bonus", data=body, headers={**ADMIN, "Idempotency-Key": unique()}
    )
    assert single.status_code == 422
    item = '{"type": "bonus", "idempotency_key": "x", "user_id": "u", "asset": "GOLD_COINS", '
    batch = '{"commands": [' + item + '"amount": 1, "reason": ' + raw + "}]}"
    response = client.post("/v1/transactions/batch", data=batch, headers=ADMIN)
    assert response.status_code == 422


def test_a_paired_surrogate_is_an_ordinary_character(client):
    body = '{"user_id": "u1", "asset": "GOLD_COINS", "amount": 1, "reason": "gift \\ud83c\\udf81"}'
    response = client.post(
        "/v1/transactions/bonus", data=body, headers={**ADMIN, "Idempotency-Key": unique()}
    )
    assert response.status_code == 202
    assert response.get_json()["reason"] == "gift \U0001f381"
    drain_all()
