"""Every bad input gets its status and stable code, as problem+json, and changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from db.engine import connect
from ledger import MAX_AMOUNT
from tests.conftest import ADMIN_KEY
from tests.integration.conftest import ADMIN, transaction_count
from tests.support import unique

GOOD = {"user_id": "alice", "asset": "GOLD_COINS", "amount": 5}


def _with(**changes):
    return {**GOOD, **changes}


AMOUNTS = [1.5, 5.0, "5", True, False, None, 0, -1, MAX_AMOUNT + 1, 10**30]
USER_IDS = ["", "@treasury", "@evil", "a" * 129, "has space", "slash/", "ünï", 7, None]


@pytest.fixture
def unchanged(client):
    """Whatever the request, no transaction may be recorded."""
    before = transaction_count()
    yield
    assert transaction_count() == before


@pytest.mark.parametrize("amount", AMOUNTS, ids=repr)
@pytest.mark.parametrize("path", ["topup", "bonus", "spend"])
def test_bad_amounts_are_422_validation_error(client, unchanged, path, amount):
    response = client.post(
        f"/v1/transactions/{path}",
        json=_with(amount=amount),
        headers={**ADMIN, "Idempotency-Key": "k"},
    )
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    problem = response.get_json()
    assert problem["code"] == "validation_error"
    assert "amount" in problem["errors"]
    assert {"type", "title", "status", "detail", "code"} <= problem.keys()


@pytest.mark.parametrize("user_id", USER_IDS, ids=repr)
def test_bad_user_ids_are_422(client, unchanged, user_id):
    response = client.post(
        "/v1/transactions/topup",
        json=_with(user_id=user_id),
        headers={**ADMIN, "Idempotency-Key": "k"},
    )
    assert response.status_code == 422
    assert response.get_json()["errors"].keys() == {"user_id"}


def test_unknown_asset_is_422_unknown_asset(client, unchanged):
    response = client.post(
        "/v1/transactions/topup",
        json=_with(asset="RUBIES"),
        headers={**ADMIN, "Idempotency-Key": "k"},
    )
    assert response.status_code == 422
    assert response.get_json()["code"] == "unknown_asset"


@pytest.mark.parametrize(
    "raw", [b"{", b"not json", b'{"amount": NaN}', b'{"amount": Infinity}', b"\xff\xfe"]
)
def test_malformed_json_is_400_invalid_json(client, unchanged, raw):
    response = client.post(
        "/v1/transactions/topup",
        data=raw,
        headers={**ADMIN, "Idempotency-Key": "k", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.content_type == "application/problem+json"
    assert response.get_json()["code"] == "invalid_json"


@pytest.mark.parametrize("body", [[], "text", 5, None])
def test_a_body_that_is_not_an_object_is_422(client, unchanged, body):
    response = client.post(
        "/v1/transactions/topup", json=body, headers={**ADMIN, "Idempotency-Key": "k"}
    )
    assert response.status_code == 422
    assert response.get_json()["code"] == "validation_error"


def test_a_body_over_1_mib_is_413(client, unchanged):
    big = {**GOOD, "metadata": {"blob": "x" * (1024 * 1024)}}
    response = client.post(
        "/v1/transactions/topup", json=big, headers={**ADMIN, "Idempotency-Key": "k"}
    )
    assert response.status_code == 413
    assert response.content_type == "application/problem+json"
    assert response.get_json()["status"] == 413


def test_metadata_over_4_kib_is_422(client, unchanged):
    response = client.post(
        "/v1/transactions/topup",
        json=_with(metadata={"note": "x" * 5000}),
        headers={**ADMIN, "Idempotency-Key": "k"},
    )
    assert response.status_code == 422
    assert "metadata" in response.get_json()["errors"]


@pytest.mark.parametrize("key", [None, "", "k" * 256, "naïve", "tab\there"], ids=repr)
def test_missing_or_malformed_idempotency_key_is_400(client, unchanged, key):
    headers = dict(ADMIN)
    if key is not None:
        headers["Idempotency-Key"] = key
    response = client.post("/v1/transactions/topup", json=GOOD, headers=headers)
    assert response.status_code == 400
    assert response.get_json()["code"] == "idempotency_key_missing"


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Bearer nope", f"Basic {ADMIN_KEY}", ADMIN_KEY]
)
def test_missing_or_wrong_keys_are_401(client, unchanged, authorization):
    headers = {"Idempotency-Key": "k"}
    if authorization is not None:
        headers["Authorization"] = authorization
    for response in (
        client.post("/v1/transactions/topup", json=GOOD, headers=headers),
        client.get("/v1/wallets/alice", headers=headers),
        client.get("/v1/assets", headers=headers),
    ):
        assert response.status_code == 401
        assert response.get_json()["code"] == "unauthorized"
        assert "WWW-Authenticate" in response.headers


def _client_with(client, scopes):
    created = client.post(
        "/v1/admin/clients", json={"name": "scoped", "scopes": scopes}, headers=ADMIN
    )
    assert created.status_code == 201
    return {"Authorization": f"Bearer {created.get_json()['api_key']}"}


def test_under_scoped_keys_are_403(client):
    reader = _client_with(client, ["read"])
    submitter = _client_with(client, ["submit"])
    before = transaction_count()
    cases = [
        client.post(
            "/v1/transactions/topup", json=GOOD, headers={**reader, "Idempotency-Key": "k"}
        ),
        client.get("/v1/wallets/alice", headers=submitter),
        client.get("/v1/assets", headers=submitter),
        client.post("/v1/assets", json={"code": "RUBY", "name": "Ruby"}, headers=reader),
        client.post("/v1/admin/clients", json={"name": "x", "scopes": ["read"]}, headers=submitter),
        client.get("/v1/admin/reconciliation", headers=reader),
    ]
    for response in cases:
        assert response.status_code == 403, response.get_json()
        assert response.get_json()["code"] == "forbidden"
    assert transaction_count() == before


@pytest.mark.parametrize(
    "path", ["/v1/transactions/00000000-0000-0000-0000-00000000dead", "/v1/transactions/not-a-uuid"]
)
def test_unknown_transaction_is_404_not_found(client, path):
    response = client.get(path, headers=ADMIN)
    assert response.status_code == 404
    assert response.get_json()["code"] == "not_found"


def test_unknown_routes_and_methods_are_problems_too(client):
    assert client.get("/v1/nothing", headers=ADMIN).get_json()["code"] == "not_found"
    response = client.delete("/v1/assets", headers=ADMIN)
    assert response.status_code == 405
    assert response.content_type == "application/problem+json"


def test_wallet_of_a_user_without_an_account_is_404_user_not_found(client):
    for user in ("never-seen", "@nothing", "bad id"):
        response = client.get(f"/v1/wallets/{user}", headers=ADMIN)
        assert response.status_code == 404
        assert response.get_json()["code"] == "user_not_found"


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=201", "limit=x", "cursor=%%%", "cursor=Zm9v", "asset=gold"]
)
def test_bad_history_queries_are_422(client, query):
    response = client.get(f"/v1/wallets/alice/transactions?{query}", headers=ADMIN)
    assert response.status_code == 422
    assert response.get_json()["code"] == "validation_error"


def test_history_with_an_unknown_asset_is_unknown_asset(client):
    response = client.get("/v1/wallets/alice/transactions?asset=RUBIES", headers=ADMIN)
    assert response.status_code == 422
    assert response.get_json()["code"] == "unknown_asset"


def api_client_count():
    with connect() as conn:
        return conn.execute(text("SELECT count(*) FROM api_clients")).scalar_one()


@pytest.mark.parametrize(
    "entry",
    ["a b", "x:99999", "evil.com/path?x", "x:0", "[zz]", "", "host:", "127.1", "-x.com", 7, None],
    ids=repr,
)
def test_a_malformed_callback_hosts_entry_is_422_and_creates_no_client(client, entry):
    before = api_client_count()
    response = client.post(
        "/v1/admin/clients",
        json={"name": "game", "scopes": ["submit"], "callback_hosts": ["ok.example.com", entry]},
        headers=ADMIN,
    )
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    problem = response.get_json()
    assert problem["code"] == "validation_error"
    assert list(problem["errors"]) == ["callback_hosts.1"]
    assert api_client_count() == before


def test_callback_hosts_are_stored_lowercase_and_canonical(client):
    response = client.post(
        "/v1/admin/clients",
        json={
            "name": "game",
            "scopes": ["submit"],
            "callback_hosts": [
                "Hooks.Example.COM:8443",
                "[2001:DB8:0::1]",
                "hooks.example.com:8443",
            ],
        },
        headers=ADMIN,
    )
    assert response.status_code == 201
    canonical = ["hooks.example.com:8443", "[2001:db8::1]"]
    assert response.get_json()["callback_hosts"] == canonical
    with connect() as conn:
        stored = conn.execute(
            text("SELECT callback_hosts FROM api_clients WHERE id = :id"),
            {"id": response.get_json()["id"]},
        ).scalar_one()
    assert stored == canonical


@pytest.fixture
def hooked(client):
    """A client whose callbacks may go to hooks.example.com (any port)."""
    created = client.post(
        "/v1/admin/clients",
        json={"name": "hooked", "scopes": ["submit"], "callback_hosts": ["hooks.example.com"]},
        headers=ADMIN,
    )
    assert created.status_code == 201
    return {"Authorization": f"Bearer {created.get_json()['api_key']}"}


UNDELIVERABLE = [
    " http://hooks.example.com/x",
    "http://hooks.example.com/x ",
    "http://hooks.example.com/a b",
    "http://hooks.example.com/x\t",
    "http://hooks.example.com/\x01",
    "http://hooks.example.com/\x7f",
    "http://hooks.exa\nmple.com/",
    "http://hooks.example.com:99999/",
    "http://hooks.example.com:0/",
    "http://[hooks.example.com]/",
    "http:///x",
]


@pytest.mark.parametrize("url", UNDELIVERABLE, ids=repr)
def test_an_undeliverable_callback_url_is_422_callback_not_allowed(client, unchanged, hooked, url):
    single = client.post(
        "/v1/transactions/topup",
        json=_with(callback_url=url),
        headers={**hooked, "Idempotency-Key": "k"},
    )
    assert single.status_code == 422
    assert single.content_type == "application/problem+json"
    assert single.get_json()["code"] == "callback_not_allowed"
    batch = client.post(
        "/v1/transactions/batch",
        json={"commands": [{"type": "topup", "idempotency_key": "b", **_with(callback_url=url)}]},
        headers=hooked,
    )
    (result,) = batch.get_json()["results"]
    assert result["status"] == 422 and result["code"] == "callback_not_allowed"


def test_a_deliverable_callback_url_is_accepted(client, hooked):
    response = client.post(
        "/v1/transactions/topup",
        json=_with(callback_url="https://Hooks.Example.com:8443/wallet?x=1"),
        headers={**hooked, "Idempotency-Key": "k"},
    )
    assert response.status_code == 202


def _ends_with_newline(response):
    assert response.get_data().endswith(b"}\n"), response.get_data()[-20:]
    assert response.get_data().count(b"\n") == 1


def test_every_json_body_ends_with_a_newline(client, monkeypatch):
    accepted = client.post(
        "/v1/transactions/topup", json=GOOD, headers={**ADMIN, "Idempotency-Key": unique("nl")}
    )
    assert accepted.status_code == 202
    _ends_with_newline(accepted)
    replayed = client.post(
        "/v1/transactions/topup",
        json=GOOD,
        headers={**ADMIN, "Idempotency-Key": accepted.get_json()["idempotency_key"]},
    )
    assert replayed.status_code == 200
    _ends_with_newline(replayed)
    _ends_with_newline(client.get("/v1/wallets/alice", headers=ADMIN))
    refused = client.post(
        "/v1/transactions/topup", json=_with(amount=0), headers={**ADMIN, "Idempotency-Key": "k"}
    )
    assert refused.status_code == 422
    _ends_with_newline(refused)
    _ends_with_newline(client.get("/v1/nothing", headers=ADMIN))
    monkeypatch.setattr("api.ops._check_broker", lambda: "error: ConnectionError")
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503
    _ends_with_newline(not_ready)
