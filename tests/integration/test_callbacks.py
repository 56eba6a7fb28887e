"""The callback outbox and one delivery attempt, against a real local receiver."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from api import intake
from db import callbacks as outbox
from db.clients import create_client
from db.engine import connect
from ledger import DEFAULT_LEDGER_ID, CommandType
from tests.integration.helpers import drain_all, transaction
from tests.receiver import Receiver, valid_signature
from tests.support import unique
from worker import callbacks


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def game(receiver):
    with connect() as conn:
        created = create_client(
            conn, DEFAULT_LEDGER_ID, "game", ["submit", "read"], [receiver.host]
        )
    return created.client


def submit_with_callback(client, receiver, kind=CommandType.TOPUP, amount=5):
    fields = {
        "user_id": unique(),
        "asset": "GOLD_COINS",
        "amount": amount,
        "callback_url": receiver.url,
    }
    return intake.submit(client, intake.Submission(kind, unique("k"), fields)).resource["id"]


def delivery_of(tx_id):
    with connect() as conn:
        return conn.execute(
            text("SELECT * FROM callback_deliveries WHERE transaction_id = :t"), {"t": tx_id}
        ).one()


def test_the_outbox_row_is_written_with_the_final_status(game, receiver, rings):
    ok = submit_with_callback(game, receiver)
    refused = submit_with_callback(game, receiver, CommandType.SPEND)
    drain_all()
    for tx_id, event in ((ok, "transaction.completed"), (refused, "transaction.rejected")):
        row = delivery_of(tx_id)
        assert row.event == event and row.status == "pending" and row.url == receiver.url
        assert json.loads(row.payload) == {"event": event, "data": transaction(tx_id)}


def test_one_attempt_signs_posts_and_records(game, receiver, rings):
    tx_id = submit_with_callback(game, receiver)
    drain_all()
    delivery = delivery_of(tx_id)
    assert callbacks.deliver(delivery.id) == "delivered"
    (request,) = receiver.received
    assert request.headers["Wallet-Event-Id"] == str(delivery.id)
    assert valid_signature(game.webhook_secret, request)
    assert request.body.decode() == delivery.payload
    assert abs(int(request.headers["Wallet-Timestamp"]) - datetime.now(UTC).timestamp()) < 5
    assert delivery_of(tx_id).status == "delivered"
    assert callbacks.deliver(delivery.id) == "skipped"  # never twice once delivered


def test_a_failed_attempt_is_retried_later_not_at_once(game, receiver, rings):
    receiver.answers = [503]
    tx_id = submit_with_callback(game, receiver)
    drain_all()
    delivery = delivery_of(tx_id)
    assert callbacks.deliver(delivery.id) == "retry"
    assert callbacks.deliver(delivery.id) == "skipped"  # not due yet
    row = delivery_of(tx_id)
    assert row.status == "pending" and row.attempts == 1 and row.last_error == "HTTP 503"
    wait = (row.next_attempt_at - datetime.now(UTC)).total_seconds()
    assert 0 < wait <= 1.0


def test_after_an_hour_of_failures_the_delivery_is_marked_failed(game, receiver, rings):
    receiver.answers = [500]
    tx_id = submit_with_callback(game, receiver)
    drain_all()
    delivery = delivery_of(tx_id)
    with connect() as conn:
        conn.execute(
            text(
                "UPDATE callback_deliveries SET created_at = now() - interval '61 minutes' "
                "WHERE id = :id"
            ),
            {"id": delivery.id},
        )
    assert callbacks.deliver(delivery.id) == "failed"
    assert delivery_of(tx_id).status == "failed"
    with connect() as conn:
        assert outbox.due(conn, 1000).count(delivery.id) == 0


def test_a_host_removed_from_the_allowlist_is_never_called(game, receiver, rings):
    tx_id = submit_with_callback(game, receiver)
    drain_all()
    with connect() as conn:
        conn.execute(
            text("UPDATE api_clients SET callback_hosts = '{}' WHERE id = :id"), {"id": game.id}
        )
    assert callbacks.deliver(delivery_of(tx_id).id) == "failed"
    assert receiver.received == []


def test_two_workers_racing_for_one_delivery_send_it_once(game, receiver, rings):
    tx_id = submit_with_callback(game, receiver)
    drain_all()
    delivery = delivery_of(tx_id).id
    outcomes = []
    threads = [
        threading.Thread(target=lambda: outcomes.append(callbacks.deliver(delivery)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["delivered"] + ["skipped"] * 7
    assert len(receiver.received) == 1


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    for attempt, ceiling in ((1, 1), (2, 2), (3, 4), (8, 128), (20, 600)):
        samples = [callbacks.backoff(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= s <= ceiling for s in samples)
    assert len({callbacks.backoff(5) for _ in range(20)}) > 1  # jitter


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body():
    import hashlib
    import hmac

    expected = hmac.new(b"secret", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert callbacks.sign("secret", "1700000000", "{}") == f"v1={expected}"


def test_unknown_delivery_is_skipped():
    assert callbacks.deliver(uuid.uuid4()) == "skipped"


def test_a_callback_to_a_registered_ipv6_host_port_is_accepted_and_delivered(rings):
    server = Receiver(address="::1")
    try:
        assert server.url == f"http://[::1]:{server.port}/hooks/wallet"
        with connect() as conn:
            client = create_client(
                conn, DEFAULT_LEDGER_ID, "v6", ["submit", "read"], [server.host]
            ).client
        tx_id = submit_with_callback(client, server)
        drain_all()
        assert callbacks.deliver(delivery_of(tx_id).id) == "delivered"
        (request,) = server.received
        assert valid_signature(client.webhook_secret, request)
    finally:
        server.stop()


def test_a_callback_url_of_any_port_on_a_registered_ipv6_host_is_accepted(rings):
    with connect() as conn:
        client = create_client(conn, DEFAULT_LEDGER_ID, "v6-any", ["submit"], ["[::1]"]).client
    for url in ("http://[::1]:9/hook", "https://[0:0::1]/hook"):
        fields = {"user_id": unique(), "asset": "GOLD_COINS", "amount": 1, "callback_url": url}
        accepted = intake.submit(client, intake.Submission(CommandType.TOPUP, unique("k"), fields))
        assert accepted.created and accepted.resource["callback_url"] == url
    drain_all()
