"""The engines of one process.

Two engines per process (one for transactions, one in autocommit), a resource of the
process (resources.py) built on first use. After a fork (gunicorn workers, Celery
prefork children) the child must not share the parent's sockets: it builds its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

import resources
import settings
from db.urls import sqlalchemy_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Engines:
    # For transactions (the drain, administration, the seed).
    transactional: Engine
    # Intake and reads are single statements, or reads of rows written atomically:
    # connections that are in autocommit from birth, with no BEGIN, COMMIT or
    # reset-on-return round trips around them.
    autocommit: Engine


def _build() -> Engines:
    autocommit = _create(pool_size=16, isolation_level="AUTOCOMMIT", pool_reset_on_return=None)
    event.listen(autocommit, "checkin", _no_transaction_left_open)
    return Engines(transactional=_create(pool_size=8), autocommit=autocommit)


def _no_transaction_left_open(dbapi_connection: Any, record: Any) -> None:
    """The autocommit pool resets nothing on return, and a pipelined unit of work (db.uow)
    opens transactions on its connections with a BEGIN of its own: a connection that
    comes back inside one (a bug: the unit of work ends its transactions itself) is
    rolled back, or dropped, before anyone else gets it. Asking libpq for the
    transaction status costs no round trip."""
    if dbapi_connection is None:
        return
    status = dbapi_connection.info.transaction_status
    if status == psycopg2.extensions.TRANSACTION_STATUS_IDLE:
        return
    log.error("a connection came back to the autocommit pool in a transaction (%s)", status)
    try:
        if status == psycopg2.extensions.TRANSACTION_STATUS_UNKNOWN:
            raise psycopg2.InterfaceError("the connection's state is unknown")
        with dbapi_connection.cursor() as cursor:
            cursor.execute("ROLLBACK")
    except Exception:
        record.invalidate()


def _dispose(engines: Engines, after_fork: bool) -> None:
    for engine in (engines.transactional, engines.autocommit):
        # After a fork the parent still owns those sockets: just stop using them here.
        engine.dispose(close=not after_fork)


ENGINES = resources.Resource("db.engines", _build, _dispose)


def get_engine() -> Engine:
    """The engine for transactions (the drain, administration, the seed)."""
    return ENGINES.get().transactional


def is_unavailable(error: BaseException) -> bool:
    """True when `error` means "the database cannot take this now", not "this request is
    wrong": the server is down or restarting, the link broke, the pool is exhausted, or
    the server reached is not (or no longer) the primary, as in a failover's window.

    The one answer used by the API's error handlers (503 with Retry-After), the intake
    (503 for every request of a batch) and the drain (leave the commands pending rather
    than reject one as poison). Follows `__cause__`, so wrapped errors count too.
    """
    seen = 0
    current: BaseException | None = error
    while current is not None and seen < 5:
        if isinstance(current, OperationalError | InterfaceError | DisconnectionError):
            return True
        if isinstance(current, PoolTimeout):
            return True
        if isinstance(current, DBAPIError):
            if current.connection_invalidated:
                return True
            current = current.orig
            continue
        if isinstance(current, psycopg2.OperationalError | psycopg2.InterfaceError):
            return True
        if _is_failover_error(current):
            return True
        current, seen = current.__cause__, seen + 1
    return False


# SQLSTATEs that mean the server cannot serve writes at all right now: a standby or a
# demoted primary (read_only_sql_transaction), a server shutting down or starting
# (operator_intervention 57P01..57P05), a broken connection (class 08).
_FAILOVER_SQLSTATES = ("25006", "57P01", "57P02", "57P03", "57P04", "57P05")


_FAILOVER_ERRORS = tuple(psycopg2.errors.lookup(code) for code in _FAILOVER_SQLSTATES)


def _is_failover_error(error: BaseException) -> bool:
    if isinstance(error, _FAILOVER_ERRORS):
        return True
    code = getattr(error, "pgcode", None)
    return isinstance(error, psycopg2.Error) and isinstance(code, str) and code.startswith("08")


def _invalidate_on_failover(context: ExceptionContext) -> None:
    """A connection that reached a server which is no longer the primary stays useless:
    SQLAlchemy only drops connections whose errors look like disconnects, and "read-only
    transaction" from a demoted primary does not. Marked as one, the pool is emptied and
    the next checkout asks libpq again, which (target_session_attrs=read-write) finds
    the new primary: the pools recover without a restart."""
    if not context.is_disconnect and _is_failover_error(context.original_exception):
        context.is_disconnect = True
    if context.is_disconnect:
        # This process's other pool holds connections to the same server: empty it too,
        # or its first statement after a failover (a read, long after) fails as well.
        engines = ENGINES.built()
        for engine in (engines.transactional, engines.autocommit) if engines else ():
            if engine is not context.engine:
                engine.dispose()


def _create(pool_size: int, **options: Any) -> Engine:
    # Sized so that every process of the stack together stays under the server's
    # max_connections (300): the API's two pools serve its threads, a worker's serve
    # its partitions. WALLET_DB_POOL_SIZE overrides both.
    config = settings.load()
    size = config.db_pool_size or pool_size
    engine = create_engine(
        sqlalchemy_url(config.database_url),
        pool_size=size,
        max_overflow=size,
        # No pre-ping: it costs a round trip per checkout, on the intake's and the
        # drain's hot paths (measured: the drain's p50 latency rose by about 3 ms with
        # it). A connection that died under us fails one statement, SQLAlchemy then
        # invalidates the pool, and every caller copes with that failure: intake
        # answers 503 (clients retry with their key), a drain leaves its commands
        # pending and releases its partition, the wake-up query rings everyone.
        pool_pre_ping=config.db_pre_ping,
        pool_recycle=1800,
        pool_timeout=5,
        connect_args={
            "connect_timeout": 5,
            # A stuck statement must not hang a request or a drain for ever. And the
            # server must end the session of a client that vanished (a host lost
            # without closing its sockets) or that stalls inside a transaction: that
            # is what frees a dead worker's drain lease and chain lock for the other
            # hosts (db.lease.DrainLease). Its own keepalives, not only libpq's.
            "options": "-c statement_timeout=30000 "
            "-c idle_in_transaction_session_timeout=60000 "
            "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 "
            "-c tcp_keepalives_count=3",
            # The client side: a server that vanished without closing the connection.
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            "tcp_user_timeout": 15000,
        },
        **options,
    )
    event.listen(engine, "handle_error", _invalidate_on_failover)
    return engine


@contextmanager
def connect() -> Iterator[Connection]:
    """A connection in a transaction that commits on success and rolls back on error:
    a unit of work (db.uow) that commits when the block ends."""
    from db.uow import UnitOfWork  # db.uow builds on this module

    with UnitOfWork() as uow:
        yield uow.connection
        uow.commit()


@contextmanager
def autocommit() -> Iterator[Connection]:
    """A connection where every statement is its own transaction.

    For work that is one statement, or only reads rows written atomically: no BEGIN and
    COMMIT round trips around it.
    """
    with ENGINES.get().autocommit.connect() as connection:
        yield connection


def autocommit_connection() -> Connection:
    """A connection of the autocommit pool that the caller holds, then closes."""
    return ENGINES.get().autocommit.connect()


# uuid.UUID in and out of raw SQL (arrays of them too), as the ORM columns already do.
psycopg2.extras.register_uuid()
