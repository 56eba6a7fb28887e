"""Outcomes for game servers: long polling, and signed callbacks with retries."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from ledger import partition_of
from tests.receiver import Receiver, valid_signature
from tests.support import unique


def game_client(api, hosts):
    created = api.post(
        "/v1/admin/clients", {"name": "game", "scopes": ["submit", "read"], "callback_hosts": hosts}
    )
    assert created.status_code == 201, created.text
    return created.json()


def topup_with_callback(api, client, url, amount=10, user=None):
    response = api.post(
        "/v1/transactions/topup",
        {"user_id": user or unique(), "asset": "GOLD_COINS", "amount": amount, "callback_url": url},
        unique("cb"),
        key=client["api_key"],
    )
    assert response.status_code == 202, response.text
    return response.json()


def test_a_callback_refused_once_is_retried_signed_with_the_same_event_id(api):
    receiver = Receiver(answers=[500, 200])
    try:
        client = game_client(api, [receiver.host])
        tx = topup_with_callback(api, client, receiver.url)
        first, second = receiver.wait_for(2, timeout=30)[:2]
        for request in (first, second):
            assert valid_signature(client["webhook_secret"], request)
            assert request.path == "/hooks/wallet"
        assert first.headers["Wallet-Event-Id"] == second.headers["Wallet-Event-Id"]
        assert first.body == second.body
        event = json.loads(second.body)
        assert event["event"] == "transaction.completed"
        assert event["data"]["id"] == tx["id"] and event["data"]["status"] == "completed"
        log = wait_for_log(api, client, tx["id"], "delivered")
        assert log["event_id"] == second.headers["Wallet-Event-Id"]
        assert [a["status_code"] for a in log["items"]] == [500, 200]
        assert log["items"][0]["next_attempt_at"] is not None
        assert log["next_attempt_at"] is None
    finally:
        receiver.stop()


def test_a_rejected_transaction_calls_back_transaction_rejected(api):
    receiver = Receiver()
    try:
        client = game_client(api, [receiver.host])
        response = api.post(
            "/v1/transactions/spend",
            {"user_id": unique(), "asset": "GOLD_COINS", "amount": 5, "callback_url": receiver.url},
            unique("cb"),
            key=client["api_key"],
        )
        (request,) = receiver.wait_for(1, timeout=30)[:1]
        event = json.loads(request.body)
        assert event["event"] == "transaction.rejected"
        assert event["data"]["id"] == response.json()["id"]
        assert event["data"]["error"]["code"] == "insufficient_funds"
    finally:
        receiver.stop()


def test_a_receiver_down_for_a_while_gets_the_callback_when_it_returns(api):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = game_client(api, [f"127.0.0.1:{port}"])
    tx = topup_with_callback(api, client, f"http://127.0.0.1:{port}/hooks/wallet")
    deadline = time.monotonic() + 30
    while (
        len(
            api.get(f"/v1/transactions/{tx['id']}/callbacks", key=client["api_key"]).json()["items"]
        )
        < 2
    ):
        assert time.monotonic() < deadline, (
            "no failed attempts recorded while the receiver was down"
        )
        time.sleep(0.3)
    receiver = Receiver(port=port)
    try:
        (request,) = receiver.wait_for(1, timeout=60)[:1]
        assert valid_signature(client["webhook_secret"], request)
        log = wait_for_log(api, client, tx["id"], "delivered")
        assert log["items"][0]["status_code"] is None and log["items"][0]["error"]
        assert log["items"][-1]["status_code"] == 200
    finally:
        receiver.stop()


def test_callbacks_only_go_to_allowed_hosts_and_redirects_are_not_followed(api):
    allowed, elsewhere = Receiver(), Receiver()
    try:
        client = game_client(api, [allowed.host])
        refused_urls = [
            elsewhere.url,  # a host:port not in callback_hosts
            f"http://localhost:{allowed.port}/x",  # the same server under another name
            f"ftp://{allowed.host}/x",
            "file:///etc/passwd",
            f"gopher://{allowed.host}/x",
            f"http://user:pw@{allowed.host}/x",
            "not a url",
        ]
        for url in refused_urls:
            response = api.post(
                "/v1/transactions/topup",
                {"user_id": unique(), "asset": "GOLD_COINS", "amount": 1, "callback_url": url},
                unique("ssrf"),
                key=client["api_key"],
            )
            assert response.status_code == 422, (url, response.text)
            assert response.json()["code"] == "callback_not_allowed"

        allowed.answers = [("redirect", elsewhere.url)]
        tx = topup_with_callback(api, client, allowed.url)
        allowed.wait_for(2, timeout=30)  # first attempt and one retry, both 302
        log = api.get(f"/v1/transactions/{tx['id']}/callbacks", key=client["api_key"]).json()
        assert log["items"][0]["status_code"] == 302
        assert log["status"] == "pending"
        time.sleep(1)
        assert elsewhere.received == []  # nothing was ever sent there
    finally:
        allowed.stop()
        elsewhere.stop()


def test_callback_log_belongs_to_the_submitting_client(api):
    receiver = Receiver()
    try:
        client = game_client(api, [receiver.host])
        other = game_client(api, [])
        tx = topup_with_callback(api, client, receiver.url)
        assert (
            api.get(f"/v1/transactions/{tx['id']}/callbacks", key=other["api_key"]).status_code
            == 404
        )
        assert api.get(f"/v1/transactions/{tx['id']}/callbacks").status_code == 200  # admin
    finally:
        receiver.stop()


def wait_for_log(api, client, tx_id, status, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        log = api.get(f"/v1/transactions/{tx_id}/callbacks", key=client["api_key"]).json()
        if log["status"] == status:
            return log
        assert time.monotonic() < deadline, log
        time.sleep(0.2)


# -- long polling ---------------------------------------------------------------------


def test_long_poll_returns_as_soon_as_the_transaction_is_final(api):
    tx = api.submit("topup", {"user_id": unique(), "asset": "GOLD_COINS", "amount": 5})
    started = time.monotonic()
    response = api.get(f"/v1/transactions/{tx['id']}", wait=10)
    elapsed = time.monotonic() - started
    assert response.json()["status"] == "completed"
    assert elapsed < 3, elapsed
    assert "Retry-After" not in response.headers


def test_long_poll_times_out_pending_with_retry_after_when_nothing_applies(stack, api):
    user = unique()
    frozen = stack.worker_for(partition_of(user, 8))
    frozen.suspend()
    try:
        tx = api.submit("topup", {"user_id": user, "asset": "GOLD_COINS", "amount": 5})
        started = time.monotonic()
        response = api.get(f"/v1/transactions/{tx['id']}", wait=2)
        elapsed = time.monotonic() - started
        assert response.status_code == 200
        assert response.json()["status"] == "pending"
        assert response.headers["Retry-After"]
        assert 1.8 < elapsed < 5, elapsed
    finally:
        frozen.resume()
    assert api.get(f"/v1/transactions/{tx['id']}", wait=10).json()["status"] == "completed"


def test_200_waiters_do_not_stop_the_api_answering_others(stack, api):
    """200 long polls parked on a pending transaction hold no database connection and
    leave the API free: another client's top-up completes promptly meanwhile."""
    waited_user = unique()
    frozen_partition = partition_of(waited_user, 8)
    frozen = stack.worker_for(frozen_partition)
    other_user = unique()
    while stack.worker_for(partition_of(other_user, 8)).pid == frozen.pid:
        other_user = unique()
    frozen.suspend()
    pool = ThreadPoolExecutor(max_workers=200)
    try:
        tx = api.submit("topup", {"user_id": waited_user, "asset": "GOLD_COINS", "amount": 5})
        session_local = threading.local()

        def wait(_):
            if not hasattr(session_local, "s"):
                session_local.s = requests.Session()
            return session_local.s.get(
                f"{api.base_url}/v1/transactions/{tx['id']}",
                params={"wait": 20},
                headers=api.headers(),
                timeout=60,
            )

        waiters = [pool.submit(wait, i) for i in range(200)]
        time.sleep(2)  # let them all park
        assert not any(w.done() for w in waiters)
        connections = stack.database_connections()
        started = time.monotonic()
        other = api.submit("topup", {"user_id": other_user, "asset": "GOLD_COINS", "amount": 7})
        done = api.get(f"/v1/transactions/{other['id']}", wait=10).json()
        elapsed = time.monotonic() - started
        assert done["status"] == "completed"
        assert elapsed < 2, (
            elapsed,
            done["created_at"],
            done["completed_at"],
            stack.redis().keys("wallet:doorbell:*"),
            frozen_partition,
            partition_of(other_user, 8),
            {q: stack.redis().llen(q) for q in (f"partition.{i}" for i in range(8))},
        )
        assert connections < 100, connections  # 200 waiters, far fewer connections
    finally:
        frozen.resume()
    answers = [w.result(timeout=60) for w in waiters]
    pool.shutdown()
    assert {a.json()["status"] for a in answers} == {"completed"}, [
        a.text for a in answers if a.status_code != 200
    ][:3]
