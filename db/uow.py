"""The unit of work: one database transaction that rolls back unless committed, with
hooks that run only once it has committed.

It is the one way to open a transaction: `db.engine.connect()` is a unit of work that
commits when its block ends. `UnitOfWork(autocommit=True)` is the same shape over a
connection of the autocommit pool, for work that is a single statement (the intake's
insert): no BEGIN or COMMIT round trips, and its hooks run after that statement.

`after_commit(hook)` is how "ring the doorbell after the commit, never before" is
written down: a hook never runs for work that rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType

from sqlalchemy import Connection

from db.engine import autocommit_connection, get_engine

log = logging.getLogger(__name__)


class UnitOfWork:
    connection: Connection

    def __init__(self, autocommit: bool = False) -> None:
        self._autocommit = autocommit
        self._hooks: list[Callable[[], object]] = []
        self._committed = False

    def __enter__(self) -> UnitOfWork:
        if self._autocommit:
            self.connection = autocommit_connection()
        else:
            self.connection = get_engine().connect()
            self.connection.begin()
        self._committed = False
        return self

    def after_commit(self, hook: Callable[[], object]) -> None:
        """Run `hook` once the work has committed (in order of registration); never if
        it rolls back. A failing hook is logged: the work is durable either way."""
        self._hooks.append(hook)

    def commit(self) -> None:
        if not self._autocommit:
            self.connection.commit()
        self._committed = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self._committed and not self._autocommit:
                self.connection.rollback()
        finally:
            self.connection.close()
        if self._committed and exc is None:
            for hook in self._hooks:
                try:
                    hook()
                except Exception:
                    log.exception("an after-commit hook failed")
