"""Integration tests: the real database, the drain called directly, no Celery."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text

from db.engine import connect
from tests.conftest import ADMIN_KEY
from tests.support import assert_ledger_invariants


@pytest.fixture(autouse=True)
def _invariants(database: str) -> Iterator[None]:
    """After every test, however it wrote: the ledger still balances."""
    yield
    assert_ledger_invariants()


@pytest.fixture
def rings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Doorbells the intake rang (recorded instead of sent: no broker in these tests)."""
    rung: list[int] = []

    def ring_many(partitions: object, force: bool = False) -> bool:
        rung.extend(sorted(set(partitions)))  # type: ignore[call-overload]
        return True

    monkeypatch.setattr("worker.doorbell.ring_many", ring_many)
    monkeypatch.setattr("worker.doorbell.ring", lambda p, force=False: ring_many([p]))
    return rung


@pytest.fixture
def client(database: str, rings: list[int]) -> FlaskClient:
    from api import create_app

    return create_app({"TESTING": True}).test_client()


ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def pending_count() -> int:
    with connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM transactions WHERE status = 'pending'")
        ).scalar_one()


def transaction_count() -> int:
    with connect() as conn:
        return conn.execute(text("SELECT count(*) FROM transactions")).scalar_one()


def post(
    client: FlaskClient,
    path: str,
    body: Any,
    key: str | None,
    headers: dict[str, str] | None = None,
) -> Any:
    all_headers = dict(ADMIN if headers is None else headers)
    if key is not None:
        all_headers["Idempotency-Key"] = key
    return client.post(path, json=body, headers=all_headers)
