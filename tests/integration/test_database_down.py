"""The database is unreachable: 503 unavailable with Retry-After, never a 500."""

from __future__ import annotations

import socket

import pytest

from tests.integration.conftest import ADMIN


@pytest.fixture
def database_down(client, monkeypatch):
    """Point the process at a port where nothing listens, then restore it."""
    import os

    from tests.conftest import _forget_process_state

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    real = os.environ["DATABASE_URL"]
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{dead_port}/nothing")
    _forget_process_state()
    yield client
    monkeypatch.setenv("DATABASE_URL", real)
    _forget_process_state()


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("post", "/v1/transactions/topup", {"user_id": "u", "asset": "GOLD_COINS", "amount": 1}),
        ("post", "/v1/transactions/batch", {"commands": [{"type": "topup"}]}),
        ("get", "/v1/wallets/alice", None),
        ("get", "/v1/transactions/00000000-0000-0000-0000-000000000001", None),
        ("get", "/v1/assets", None),
    ],
)
def test_requests_get_503_with_retry_after(database_down, method, path, body):
    response = getattr(database_down, method)(
        path, json=body, headers={**ADMIN, "Idempotency-Key": "down-1"}
    )
    assert response.status_code == 503
    assert response.content_type == "application/problem+json"
    assert response.get_json()["code"] == "unavailable"
    assert int(response.headers["Retry-After"]) >= 1


def test_readyz_is_503_and_says_which_dependency(database_down):
    response = database_down.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"].startswith("error")
    assert database_down.get("/healthz").status_code == 200
