"""?wait=N returns as soon as the transaction is final, with or without Redis."""

from __future__ import annotations

import threading
import time

from ledger import CommandType, partition_of
from tests.integration.conftest import ADMIN
from tests.integration.helpers import submit
from tests.support import unique
from worker.drain import drain
from worker.notify import publish_final


def apply_later(user: str, delay: float) -> threading.Thread:
    """What a worker does, a little later: drain, then announce after the commit."""

    def run() -> None:
        time.sleep(delay)
        result = drain(partition_of(user, 8))
        publish_final((f.id, f.status) for f in result.finished)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_wait_returns_when_the_transaction_becomes_final(client):
    user = unique()
    tx = submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=3)
    worker = apply_later(user, 0.5)
    started = time.monotonic()
    response = client.get(f"/v1/transactions/{tx['id']}?wait=10", headers=ADMIN)
    elapsed = time.monotonic() - started
    worker.join()
    assert response.get_json()["status"] == "completed"
    assert 0.4 < elapsed < 3
    assert "Retry-After" not in response.headers


def test_wait_times_out_with_the_pending_resource_and_retry_after(client):
    tx = submit(CommandType.TOPUP, user_id=unique(), asset="GOLD_COINS", amount=3)
    started = time.monotonic()
    response = client.get(f"/v1/transactions/{tx['id']}?wait=1", headers=ADMIN)
    assert 0.9 < time.monotonic() - started < 3
    assert response.status_code == 200
    assert response.get_json()["status"] == "pending"
    assert response.headers["Retry-After"] == "1"
    drain(partition_of(tx["user_id"], 8))


def test_without_redis_the_wait_polls_the_database(client, monkeypatch):
    from tests.conftest import _forget_process_state

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    _forget_process_state()
    user = unique()
    tx = submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=3)
    worker = apply_later(user, 0.5)
    response = client.get(f"/v1/transactions/{tx['id']}?wait=10", headers=ADMIN)
    worker.join()
    assert response.get_json()["status"] == "completed"
    monkeypatch.undo()
    _forget_process_state()


def test_wait_must_be_0_to_30_seconds(client):
    tx = submit(CommandType.TOPUP, user_id=unique(), asset="GOLD_COINS", amount=3)
    for wait in ("31", "-1", "soon"):
        response = client.get(f"/v1/transactions/{tx['id']}?wait={wait}", headers=ADMIN)
        assert response.status_code == 422
    drain(partition_of(tx["user_id"], 8))
