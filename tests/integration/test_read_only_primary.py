"""A server that no longer takes writes (a demoted primary, a standby): PostgreSQL's
`read-only transaction` error, SQLSTATE 25006, made here with
default_transaction_read_only. It means "database unavailable" everywhere: intake
answers 503, the drain leaves commands pending, the pool drops the connection."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg2
import pytest
from sqlalchemy import text
from sqlalchemy.exc import InternalError

from db.engine import autocommit_connection, is_unavailable
from tests.integration.conftest import post
from worker.drain import apply_batch


def _set_read_only(database: str, on: bool) -> None:
    conn = psycopg2.connect(database)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SET default_transaction_read_only = off")  # for this session
            setting = "SET default_transaction_read_only = on" if on else "RESET ALL"
            cur.execute(f'ALTER DATABASE "{conn.info.dbname}" {setting}')
    finally:
        conn.close()


@pytest.fixture
def read_only(database: str) -> Iterator[None]:
    """Every new session of the database is read-only, as on a demoted primary."""
    from tests.conftest import _forget_process_state

    _set_read_only(database, True)
    _forget_process_state()  # new pools: their sessions start read-only
    try:
        yield
    finally:
        _set_read_only(database, False)
        _forget_process_state()


def test_a_pooled_connection_to_a_read_only_server_is_dropped_from_the_pool(database):
    conn = autocommit_connection()
    try:
        conn.execute(text("SET default_transaction_read_only = on"))
        with pytest.raises(InternalError) as raised:
            conn.execute(text("CREATE TEMPORARY TABLE t (x int)"))
        assert is_unavailable(raised.value)
        # Without this, the connection would go back to the pool and keep failing.
        assert conn.invalidated
    finally:
        conn.close()


def test_intake_answers_503_with_retry_after_when_the_server_is_read_only(client, read_only):
    body = {"user_id": "ro-" + uuid.uuid4().hex[:8], "asset": "GOLD_COINS", "amount": 1}
    response = post(client, "/v1/transactions/topup", body, f"ro-{uuid.uuid4().hex}")
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.get_json()["code"] == "unavailable"
    assert int(response.headers["Retry-After"]) >= 1


def test_the_drain_leaves_commands_pending_when_the_server_is_read_only(client, database):
    user = "ro-" + uuid.uuid4().hex[:8]
    body = {"user_id": user, "asset": "GOLD_COINS", "amount": 3}
    accepted = post(client, "/v1/transactions/topup", body, f"ro-{uuid.uuid4().hex}")
    assert accepted.status_code == 202
    tx_id = accepted.get_json()["id"]
    with psycopg2.connect(database) as conn, conn.cursor() as cur:
        cur.execute("SELECT partition FROM transactions WHERE id = %s", (tx_id,))
        partition = cur.fetchone()[0]
    from tests.conftest import _forget_process_state

    _set_read_only(database, True)
    _forget_process_state()
    try:
        # Not BatchFailed: that would retry one by one and reject the command as poison.
        with pytest.raises(InternalError) as raised:
            apply_batch(partition, 10)
        assert is_unavailable(raised.value)
    finally:
        _set_read_only(database, False)
        _forget_process_state()
    with psycopg2.connect(database) as conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM transactions WHERE id = %s", (tx_id,))
        assert cur.fetchone()[0] == "pending"
    assert apply_batch(partition, 10).finished
