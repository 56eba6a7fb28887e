"""A receiver that keeps failing: the delivery is listed pending, then failed, Flower
shows its attempts as retries and a failure (not successes), and an operator's
redelivery sends the same event, with the same body, once the receiver is back."""

from __future__ import annotations

import time
import uuid
from typing import Any

import requests

from tests.e2e.test_outcomes import game_client, topup_with_callback, wait_for_log
from tests.receiver import Receiver


def listed(api: Any, status: str, tx_id: str) -> dict[str, Any] | None:
    page = api.get("/v1/admin/callbacks", status=status, limit=200)
    assert page.status_code == 200, page.text
    return next((d for d in page.json()["items"] if d["transaction_id"] == tx_id), None)


def flower_tasks(stack: Any, event_id: str) -> list[dict[str, Any]]:
    response = requests.get(
        f"{stack.flower_url}/api/tasks",
        params={"taskname": "wallet.deliver_callback", "limit": 1000},
        auth=stack.flower_auth,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return [task for task in response.json().values() if event_id in (task.get("args") or "")]


def test_a_failing_callback_is_listed_failed_shown_as_retries_in_flower_and_redelivered(stack, api):
    receiver = Receiver(answers=[500])
    try:
        client = game_client(api, [receiver.host])
        tx = topup_with_callback(api, client, receiver.url)
        deadline = time.monotonic() + 10
        while (pending := listed(api, "pending", tx["id"])) is None:
            assert time.monotonic() < deadline, "never listed as pending"
            time.sleep(0.1)
        event_id = pending["event_id"]
        deadline = time.monotonic() + 30  # retried for 6 s in this stack (conftest)
        while (failed := listed(api, "failed", tx["id"])) is None:
            assert time.monotonic() < deadline, "never listed as failed"
            time.sleep(0.3)
        assert failed["event_id"] == event_id and failed["attempts"] >= 2
        assert failed["last_error"] == "HTTP 500"
        attempts = list(receiver.received)
        assert {r.headers["Wallet-Event-Id"] for r in attempts} == {event_id}

        deadline = time.monotonic() + 15
        while True:  # Flower learns from task events, a moment after the fact
            states = [t["state"] for t in flower_tasks(stack, event_id)]
            retried = any(
                t.get("retries") or t.get("retried") for t in flower_tasks(stack, event_id)
            )
            if "FAILURE" in states and (retried or "RETRY" in states):
                break
            assert time.monotonic() < deadline, states
            time.sleep(0.5)

        receiver.answers = [200]
        redelivery = api.post(f"/v1/admin/callbacks/{event_id}/redeliver")
        assert redelivery.status_code == 202, redelivery.text
        assert redelivery.json()["status"] == "pending"
        again = receiver.wait_for(len(attempts) + 1, timeout=15)[len(attempts)]
        assert again.headers["Wallet-Event-Id"] == event_id
        assert again.body == attempts[0].body
        log = wait_for_log(api, client, tx["id"], "delivered", timeout=15)
        assert log["items"][-1]["status_code"] == 200

        assert api.post(f"/v1/admin/callbacks/{event_id}/redeliver").status_code == 409
        assert api.post(f"/v1/admin/callbacks/{uuid.uuid4()}/redeliver").status_code == 404
        reader = game_client(api, [])
        forbidden = api.get("/v1/admin/callbacks", key=reader["api_key"], status="failed")
        assert forbidden.status_code == 403
    finally:
        receiver.stop()
