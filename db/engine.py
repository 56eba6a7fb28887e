"""The engine and sessions of one process.

One engine per process, created on first use. After a fork (gunicorn workers, Celery
prefork children) the child must not share the parent's sockets, so the pool is
replaced in the child before anyone can use it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2.extras
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

import settings

_lock = threading.Lock()
_engine: Engine | None = None
_sessions: sessionmaker[Session] | None = None


def sqlalchemy_url(url: str) -> str:
    """DATABASE_URL as SQLAlchemy should read it: always through psycopg2.

    SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; this service uses psycopg2.
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


def get_engine() -> Engine:
    global _engine, _sessions
    if _engine is None:
        with _lock:
            if _engine is None:
                _engine = create_engine(
                    sqlalchemy_url(settings.load().database_url),
                    pool_size=int(os.environ.get("WALLET_DB_POOL_SIZE", "10")),
                    max_overflow=int(os.environ.get("WALLET_DB_POOL_OVERFLOW", "20")),
                    pool_pre_ping=True,
                    pool_timeout=5,
                    # A stuck statement must not hang a request or a drain for ever.
                    connect_args={"connect_timeout": 5, "options": "-c statement_timeout=30000"},
                )
                _sessions = sessionmaker(_engine, expire_on_commit=False)
    return _engine


def session() -> Session:
    get_engine()
    assert _sessions is not None
    return _sessions()


@contextmanager
def connect() -> Iterator[Connection]:
    """A connection in a transaction that commits on success and rolls back on error."""
    with get_engine().begin() as connection:
        yield connection


def reset_engine() -> None:
    """Forget the engine (tests that change DATABASE_URL, and children after a fork)."""
    global _engine, _sessions
    if _engine is not None:
        # close=False: the parent still owns those sockets; just stop using them here.
        _engine.dispose(close=False)
    _engine = None
    _sessions = None


os.register_at_fork(after_in_child=reset_engine)


# uuid.UUID in and out of raw SQL (arrays of them too), as the ORM columns already do.
psycopg2.extras.register_uuid()
