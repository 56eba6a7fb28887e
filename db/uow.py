"""The unit of work: one database transaction that rolls back unless committed."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import Connection

from db.engine import get_engine


class UnitOfWork:
    connection: Connection

    def __enter__(self) -> UnitOfWork:
        self.connection = get_engine().connect()
        self.connection.begin()
        self._committed = False
        return self

    def commit(self) -> None:
        self.connection.commit()
        self._committed = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self._committed:
                self.connection.rollback()
        finally:
            self.connection.close()
