"""The seeds' design, kept as a reference: a synchronous spend, one transaction per request.

Each POST /spend locks the one system row every spend credits, then the user's row,
checks the balance, writes both balances, the transaction and its two entries, and
commits before it answers. The hot system row serialises every request in the
service: this is the design the real service's partitions and batches replace.

Run by bench.reference.sync_reference_server under the real gunicorn.conf.py; the
tables are bench.reference's `bench_ref` schema. Environment:
BENCH_REF_DATABASE_URL (required), BENCH_REF_TOKEN (echoed by /healthz),
BENCH_REF_POOL_SIZE (connections per worker process, default 10).
"""

from __future__ import annotations

import os
import queue
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.extensions
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from db.ids import uuid7

SCHEMA = "bench_ref"
SYSTEM_OWNER = "@revenue"
BOOTSTRAP_CLIENT = "00000000-0000-0000-0000-000000000001"
LOCK_ACCOUNT = (
    f"SELECT id, balance FROM {SCHEMA}.accounts WHERE owner = %s AND shard = 0 FOR UPDATE"
)


class Pool:
    """A fixed number of connections per process, opened on first use.

    Opened lazily so that they are made after gunicorn's fork; a get() on an empty pool
    waits for a connection instead of failing as psycopg2's own pools do.
    """

    def __init__(self, dsn: str, size: int) -> None:
        self._dsn = dsn
        self._free: queue.LifoQueue[psycopg2.extensions.connection | None] = queue.LifoQueue()
        for _ in range(size):
            self._free.put(None)

    @contextmanager
    def connection(self) -> Iterator[psycopg2.extensions.connection]:
        conn = self._free.get()
        try:
            if conn is None or conn.closed:
                conn = psycopg2.connect(self._dsn)
            yield conn
        except psycopg2.OperationalError:
            # A broken connection is not returned to the pool; its slot reconnects.
            if conn is not None:
                conn.close()
            conn = None
            raise
        finally:
            self._free.put(conn)


class Refused(Exception):
    def __init__(self, status: int, code: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code


def spend(conn: psycopg2.extensions.connection, user_id: str, amount: int) -> dict[str, Any]:
    """Apply one spend in one transaction; raises Refused (rolled back) if it cannot."""
    tx_id = str(uuid7())
    with conn, conn.cursor() as cur:  # commits on success, rolls back on any exception
        # The single hot row: every request queues here, whatever the user.
        cur.execute(LOCK_ACCOUNT, (SYSTEM_OWNER,))
        system_id, _ = cur.fetchone()
        cur.execute(LOCK_ACCOUNT, (user_id,))
        row = cur.fetchone()
        if row is None:
            raise Refused(404, "wallet_not_found")
        account_id, balance = row
        if balance < amount:
            raise Refused(422, "insufficient_funds")
        balance_after = int(balance) - amount
        cur.execute(
            f"UPDATE {SCHEMA}.accounts SET balance = %s, updated_at = now() WHERE id = %s",
            (balance_after, account_id),
        )
        cur.execute(
            f"UPDATE {SCHEMA}.accounts SET balance = balance + %s, updated_at = now() "
            "WHERE id = %s",
            (amount, system_id),
        )
        cur.execute(
            f"INSERT INTO {SCHEMA}.transactions (id, client_id, idempotency_key, type, status, "
            "partition, user_id, amount, balance_after, completed_at) "
            "VALUES (%s, %s, %s, 'spend', 'completed', 0, %s, %s, %s, now())",
            (tx_id, BOOTSTRAP_CLIENT, tx_id, user_id, amount, balance_after),
        )
        cur.execute(
            f"INSERT INTO {SCHEMA}.ledger_entries (transaction_id, account_id, amount) "
            "VALUES (%s, %s, %s), (%s, %s, %s)",
            (tx_id, account_id, -amount, tx_id, system_id, amount),
        )
    return {"id": tx_id, "status": "completed", "balance": balance_after}


def create_app() -> Flask:
    pool = Pool(
        os.environ["BENCH_REF_DATABASE_URL"], int(os.environ.get("BENCH_REF_POOL_SIZE", "10"))
    )
    token = os.environ.get("BENCH_REF_TOKEN", "ok")
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        return token, 200, {"Content-Type": "text/plain"}

    @app.post("/spend")
    def post_spend() -> ResponseReturnValue:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return jsonify(error="invalid_json"), 400
        user_id, amount = body.get("user_id"), body.get("amount")
        if not isinstance(user_id, str) or type(amount) is not int or amount <= 0:
            return jsonify(error="invalid_request"), 400
        try:
            with pool.connection() as conn:
                return jsonify(spend(conn, user_id, amount)), 200
        except Refused as refused:
            return jsonify(error=refused.code), refused.status

    return app
