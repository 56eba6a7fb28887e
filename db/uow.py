"""The unit of work: one database transaction that rolls back unless committed, with
hooks that run only once it has committed.

It is the one way to open a transaction: `db.engine.connect()` is a unit of work that
commits when its block ends. `UnitOfWork(autocommit=True)` is the same shape over a
connection of the autocommit pool, for work that is a single statement (the intake's
insert): no BEGIN or COMMIT round trips, and its hooks run after that statement.

`after_commit(hook)` is how "ring the doorbell after the commit, never before" is
written down: a hook never runs for work that rolled back.

`UnitOfWork(pipelined=True)` is a transaction whose BEGIN travels with its first
statement and whose COMMIT travels with its last, over an autocommit connection: the
drain's batch (worker.drain) is three round trips instead of five (psycopg2 sends a
BEGIN of its own before the first statement of a transaction, and a COMMIT of its own).
Its first statement is written `uow.begin() + sql`; `commit(statement, then=...)`
sends the last statement, COMMIT, and a statement to run after the commit, as one
message. Left without a commit, it sends ROLLBACK, or drops the connection if even that
fails: a connection never goes back to the pool inside a transaction (the drain's
partition lock is a transaction lock, and would be held on).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import psycopg2.extensions
from sqlalchemy import Connection, Row, text

from db.engine import autocommit_connection, get_engine

log = logging.getLogger(__name__)


class UnitOfWork:
    connection: Connection

    def __init__(self, autocommit: bool = False, pipelined: bool = False) -> None:
        if autocommit and pipelined:
            raise ValueError("a unit of work is autocommit or pipelined, not both")
        self._autocommit = autocommit
        self._pipelined = pipelined
        self._hooks: list[Callable[[], object]] = []
        self._committed = False
        self._begun = False

    def __enter__(self) -> UnitOfWork:
        if self._autocommit or self._pipelined:
            self.connection = autocommit_connection()
        else:
            self.connection = get_engine().connect()
            self.connection.begin()
        self._committed = False
        self._begun = False
        return self

    def begin(self) -> str:
        """The SQL to put before the transaction's first statement: `BEGIN; ` in a
        pipelined unit of work (once), nothing otherwise (it has begun already)."""
        if not self._pipelined or self._begun:
            return ""
        self._begun = True  # before it is sent: a failed first statement may have begun it
        return "BEGIN; "

    def after_commit(self, hook: Callable[[], object]) -> None:
        """Run `hook` once the work has committed (in order of registration); never if
        it rolls back. A failing hook is logged: the work is durable either way."""
        self._hooks.append(hook)

    def commit(
        self,
        statement: str | None = None,
        params: Mapping[str, Any] | None = None,
        then: str | None = None,
    ) -> Sequence[Row[Any]] | None:
        """Commit, with `statement` as the transaction's last statement and `then` run
        right after the commit (on its own, as a statement of its own transaction);
        the rows of `then`, if any. Pipelined, all of it is one round trip; if `then`
        fails after the COMMIT went through, the work is committed and None is
        returned (the caller asks again, or does without)."""
        sql = [s for s in (statement,) if s]
        if self._pipelined:
            if self._begun:
                sql.append("COMMIT")
            sql += [then] if then else []
            try:
                rows = self._execute(sql, params, returns=bool(then))
            except Exception:
                if not (self._begun and then and self._transaction_over()):
                    raise
                # The COMMIT went through and the statement after it failed: the work
                # is durable, its after-commit hooks must run. No rows (None).
                log.warning("the statement after a commit failed", exc_info=True)
                self._committed = True
                return None
        else:
            self._execute(sql, params, returns=False)
            if not self._autocommit:
                self.connection.commit()
            rows = self._execute([then] if then else [], params, returns=True)
        self._committed = True
        return rows

    def _execute(
        self, sql: list[str], params: Mapping[str, Any] | None, returns: bool
    ) -> Sequence[Row[Any]]:
        if not sql:
            return []
        result = self.connection.execute(text("; ".join(sql)), dict(params or {}))
        return result.all() if returns else []

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self._committed and self._pipelined and self._begun:
                self._roll_back_pipelined()
            elif not self._committed and not self._autocommit and not self._pipelined:
                self.connection.rollback()
        finally:
            self.connection.close()
        if self._committed and exc is None:
            for hook in self._hooks:
                try:
                    hook()
                except Exception:
                    log.exception("an after-commit hook failed")

    def _transaction_over(self) -> bool:
        """Whether the server's session is outside any transaction now, as libpq last
        heard (no round trip): after a failed message that held a COMMIT, the COMMIT
        went through. False when the connection is gone (the outcome is unknown)."""
        try:
            dbapi = self.connection.connection.dbapi_connection
            idle = psycopg2.extensions.TRANSACTION_STATUS_IDLE
            return dbapi is not None and dbapi.info.transaction_status == idle
        except Exception:
            return False

    def _roll_back_pipelined(self) -> None:
        """ROLLBACK on the autocommit connection (its pool does not reset it), or, if
        that fails, drop the connection: closing it ends the transaction on the server."""
        if self.connection.invalidated:  # dropped already (a disconnect): nothing is open
            return
        try:
            self.connection.exec_driver_sql("ROLLBACK")
        except Exception as error:
            log.warning("rollback failed, dropping the connection: %r", error)
            self.connection.invalidate()
