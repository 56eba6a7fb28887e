"""The OpenAPI document states the rules the service applies and the errors it sends."""

from __future__ import annotations

import re
from typing import Any

import pytest

from api import create_app
from api.schemas import ACCOUNT_PATTERN, USER_ID_PATTERN
from ledger import is_valid_user_id

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    with create_app().test_client() as client:
        return client.get("/openapi.json").get_json()  # type: ignore[no-any-return]


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def resolve(document: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in response:
        return document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return response


def test_every_error_is_a_problem_json_and_there_is_no_default(document):
    for method, path, operation in operations(document):
        responses = operation["responses"]
        assert "default" not in responses, (method, path)
        for status in ("400", "401", "403", "413", "414", "431", "503"):
            assert status in responses, (method, path, status)
        for status, response in responses.items():
            if int(status) >= 400:
                content = resolve(document, response)["content"]
                assert content == {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (method, path, status)
    problem = document["components"]["schemas"]["Problem"]["properties"]
    assert (problem["status"]["type"], problem["code"]["type"]) == ("integer", "string")
    assert "Error" not in document["components"]["schemas"]


def test_conflicts_and_lookups_are_documented_where_they_happen(document):
    paths = document["paths"]
    assert "409" in paths["/v1/assets"]["post"]["responses"]
    for path in ("/v1/transactions/{hold_id}/capture", "/v1/transactions/{tx_id}"):
        assert "404" in next(iter(paths[path].values()))["responses"]


def test_every_request_body_has_an_example_that_its_schema_accepts(document):
    bodies = [
        (path, op["requestBody"]["content"]["application/json"])
        for _, path, op in operations(document)
        if "requestBody" in op
    ]
    assert len(bodies) == 15  # with PATCH asset, freeze and unfreeze
    for path, media in bodies:
        assert "example" in media, path
        schema = document["components"]["schemas"][media["schema"]["$ref"].rsplit("/", 1)[1]]
        assert set(schema.get("required", ())) <= set(media["example"]), path
        assert "callback_url" not in media["example"], path
    topup = document["paths"]["/v1/transactions/topup"]["post"]["requestBody"]
    assert topup["content"]["application/json"]["example"] == {
        "user_id": "alice",
        "asset": "GOLD_COINS",
        "amount": 100,
    }


@pytest.mark.parametrize(
    "user_id",
    ["a", "alice", "Player_1.x:y@z-w", "a" * 128, "a" * 129, "", "@treasury", "a@b", "é", "a b"],
)
def test_documented_user_id_pattern_is_the_rule_the_service_applies(user_id):
    assert (re.fullmatch(USER_ID_PATTERN, user_id) is not None) == is_valid_user_id(user_id)


def test_wallet_reads_document_system_accounts_too():
    for account in ("@treasury", "@promotions", "@revenue", "alice"):
        assert re.fullmatch(ACCOUNT_PATTERN, account)
    assert not re.fullmatch(ACCOUNT_PATTERN, "@nobody")


def test_a_rejections_error_is_a_typed_nullable_object(document):
    error = document["components"]["schemas"]["Transaction"]["properties"]["error"]
    assert error == {"allOf": [{"$ref": "#/components/schemas/Rejection"}], "nullable": True}


def test_idempotency_key_header_has_its_pattern(document):
    parameters = document["paths"]["/v1/transactions/topup"]["post"]["parameters"]
    header = next(p for p in parameters if p["name"] == "Idempotency-Key")
    assert header["schema"]["pattern"] == r"^[\x20-\x7e]{1,255}$"
