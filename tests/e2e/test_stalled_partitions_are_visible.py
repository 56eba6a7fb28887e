"""A partition nobody drains is visible in /v1/admin/partitions and /metrics, while
/readyz stays about the API's own dependencies."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from celery import Celery

from ledger import partition_of
from tests.support import unique


def partition_row(api: Any, partition: int) -> dict[str, Any]:
    response = api.get("/v1/admin/partitions")
    assert response.status_code == 200, response.text
    return next(row for row in response.json()["items"] if row["partition"] == partition)


def eventually(check: Callable[[], Any], timeout: float = 20, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.2)


def test_a_partition_without_a_consumer_is_a_stall_until_its_consumer_is_back(stack, api):
    user = unique()
    partition = partition_of(user, 8)
    queue = f"partition.{partition}"
    node = stack.node_name(stack.worker_for(partition))
    control = Celery(broker=stack.redis_url).control
    assert control.cancel_consumer(queue, destination=[node], reply=True, timeout=5)
    try:
        # A drain that was already running lets its partition go within its budget.
        eventually(
            lambda: not stack.redis().exists(f"wallet:doorbell:{partition}"), 10, "drain idle"
        )
        tx = api.submit("topup", {"user_id": user, "asset": "GOLD_COINS", "amount": 5})
        row = eventually(
            lambda: (r := partition_row(api, partition))["stalled"] and r,
            what="the partition shows as stalled",
        )
        assert row["consumers"] == 0 and row["pending"] >= 1
        stalled = eventually(
            lambda: stack.metric("wallet_partition_stalled", partition=str(partition)) == 1,
            what="wallet_partition_stalled is 1",
        )
        assert stalled
        assert stack.metric("wallet_partition_consumers", partition=str(partition)) == 0
        assert api.get("/readyz").status_code == 200  # the API itself is fine
        assert api.get(f"/v1/transactions/{tx['id']}").json()["status"] == "pending"
    finally:
        control.add_consumer(queue, destination=[node], reply=True, timeout=5)
    assert api.final(tx["id"], timeout=30)["status"] == "completed"
    row = eventually(
        lambda: (r := partition_row(api, partition))["consumers"] == 1 and r,
        what="the consumer is counted again",
    )
    assert row["stalled"] is False and row["last_drain_at"] is not None
    assert eventually(
        lambda: stack.metric("wallet_partition_stalled", partition=str(partition)) == 0,
        what="wallet_partition_stalled back to 0",
    )


def test_a_frozen_worker_shows_a_growing_oldest_pending_age_then_drains(stack, api):
    user = unique()
    partition = partition_of(user, 8)
    worker = stack.worker_for(partition)
    worker.suspend()
    try:
        tx = api.submit("topup", {"user_id": user, "asset": "GOLD_COINS", "amount": 5})
        first = eventually(
            lambda: (r := partition_row(api, partition))["oldest_pending_age_s"] is not None and r,
            what="an oldest pending age",
        )
        time.sleep(1.5)
        second = partition_row(api, partition)
        assert second["oldest_pending_age_s"] >= first["oldest_pending_age_s"] + 1.4
        age = stack.metric("wallet_oldest_pending_seconds", partition=str(partition))
        assert age is not None and age >= second["oldest_pending_age_s"]
    finally:
        worker.resume()
    assert api.final(tx["id"], timeout=30)["status"] == "completed"
    row = eventually(
        lambda: (r := partition_row(api, partition))["pending"] == 0 and r, what="drained"
    )
    assert row["oldest_pending_age_s"] is None
    assert stack.metric("wallet_oldest_pending_seconds", partition=str(partition)) == 0
