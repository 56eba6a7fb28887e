"""Configuration for HA backends: a multi-host DATABASE_URL in libpq's form, Redis
through Sentinel, and which errors mean "the database is unavailable"."""

from __future__ import annotations

import importlib

import psycopg2
import psycopg2.errors
import pytest
import redis
from redis.sentinel import SentinelConnectionPool
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    InternalError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

import settings
from db import urls
from db.engine import is_unavailable
from stack.__main__ import _without_password
from worker import connections

HA_URL = (
    "postgresql://wallet:s%40cret@10.0.0.1:5433,10.0.0.2/wallet?target_session_attrs=read-write"
)


def test_a_multi_host_url_reaches_libpq_as_host_and_port_lists() -> None:
    engine = create_engine(urls.sqlalchemy_url(HA_URL))
    _, params = engine.dialect.create_connect_args(engine.url)
    assert params == {
        "dbname": "wallet",
        "user": "wallet",
        "password": "s@cret",
        "host": "10.0.0.1,10.0.0.2",
        "port": "5433,5432",
        "target_session_attrs": "read-write",
    }


def test_a_single_host_url_is_only_given_the_psycopg2_driver() -> None:
    assert (
        urls.sqlalchemy_url("postgresql://u:p@db:5432/wallet")
        == "postgresql+psycopg2://u:p@db:5432/wallet"
    )
    # Already in SQLAlchemy's multi-host form: passed through.
    given = make_url(urls.sqlalchemy_url("postgresql+psycopg2://u@/wallet?host=a:1&host=b:2"))
    assert (given.drivername, given.query["host"]) == ("postgresql+psycopg2", ("a:1", "b:2"))


def test_hosts_in_both_the_netloc_and_the_query_are_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        urls.sqlalchemy_url("postgresql://u@a:1,b:2/wallet?host=c")


def test_the_banner_masks_the_password_of_a_multi_host_url() -> None:
    masked = _without_password(HA_URL)
    assert masked == (
        "postgresql://wallet:***@10.0.0.1:5433,10.0.0.2/wallet?target_session_attrs=read-write"
    )
    assert _without_password("redis://:pw@redis:6379/0") == "redis://:***@redis:6379/0"
    assert _without_password("postgresql://u@h/db") == "postgresql://u@h/db"


def test_another_database_on_the_same_hosts() -> None:
    assert urls.with_database(HA_URL, "other") == HA_URL.replace("/wallet?", "/other?")
    assert urls.parse(HA_URL).hosts == (("10.0.0.1", 5433), ("10.0.0.2", None))


@pytest.fixture
def sentinel_env(monkeypatch: pytest.MonkeyPatch) -> settings.Settings:
    monkeypatch.setenv("REDIS_SENTINELS", "10.0.0.1:26379, 10.0.0.2:26380,10.0.0.3")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "wallet")
    settings.load.cache_clear()
    yield settings.load()
    monkeypatch.undo()
    settings.load.cache_clear()


def test_sentinels_are_read_from_the_environment(sentinel_env: settings.Settings) -> None:
    assert sentinel_env.redis_sentinels == (
        ("10.0.0.1", 26379),
        ("10.0.0.2", 26380),
        ("10.0.0.3", 26379),
    )
    assert sentinel_env.redis_sentinel_master == "wallet"


def test_sentinels_without_a_master_name_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_SENTINELS", "10.0.0.1:26379")
    monkeypatch.delenv("REDIS_SENTINEL_MASTER", raising=False)
    settings.load.cache_clear()
    try:
        with pytest.raises(ValueError, match="REDIS_SENTINEL_MASTER"):
            settings.load()
    finally:
        monkeypatch.undo()
        settings.load.cache_clear()


def test_celery_finds_the_broker_through_the_sentinels(sentinel_env: settings.Settings) -> None:
    import celeryconfig

    try:
        config = importlib.reload(celeryconfig)
        assert config.broker_url == (
            "sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26380;sentinel://10.0.0.3:26379"
        )
        assert config.broker_transport_options["master_name"] == "wallet"
        assert config.broker_transport_options["visibility_timeout"] == 3600
    finally:
        settings.load.cache_clear()


def test_every_redis_client_asks_the_sentinels_for_the_master(
    sentinel_env: settings.Settings,
) -> None:
    client = connections.connect_redis(socket_timeout=2, max_connections=7)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "wallet"
    assert pool.max_connections == 7
    assert [
        (c.connection_pool.connection_kwargs["host"], c.connection_pool.connection_kwargs["port"])
        for c in pool.sentinel_manager.sentinels
    ] == list(sentinel_env.redis_sentinels)
    # Retries are few and short: a ring must not hold a 202 for a whole failover.
    assert client.get_retry().get_retries() == connections.RETRIES


def test_without_sentinels_redis_is_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_SENTINELS", raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://10.0.0.9:6390/3")
    settings.load.cache_clear()
    try:
        client = connections.connect_redis()
        assert type(client.connection_pool) is redis.ConnectionPool
        assert client.connection_pool.connection_kwargs["port"] == 6390
        assert connections.broker_url(settings.load()) == "redis://10.0.0.9:6390/3"
        assert connections.broker_transport_options(settings.load()) == {}
    finally:
        monkeypatch.undo()
        settings.load.cache_clear()


def _wrapped(cls: type[DBAPIError], orig: Exception, invalidated: bool = False) -> DBAPIError:
    return cls("INSERT ...", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "error",
    [
        _wrapped(OperationalError, psycopg2.OperationalError("server closed the connection")),
        _wrapped(InterfaceError, psycopg2.InterfaceError("connection already closed")),
        # A demoted primary, or a standby reached without target_session_attrs.
        _wrapped(InternalError, psycopg2.errors.ReadOnlySqlTransaction("read-only transaction")),
        _wrapped(OperationalError, psycopg2.errors.AdminShutdown("terminating connection")),
        _wrapped(DBAPIError, psycopg2.DatabaseError("SSL SYSCALL error"), invalidated=True),
        PoolTimeout("QueuePool limit reached"),
        psycopg2.OperationalError("could not connect to server"),
        RuntimeError("wrapped"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_failover_errors_mean_the_database_is_unavailable(error: BaseException) -> None:
    if isinstance(error, RuntimeError):
        error.__cause__ = psycopg2.errors.ReadOnlySqlTransaction("read-only")
    assert is_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        _wrapped(DataError, psycopg2.errors.NumericValueOutOfRange("out of range")),
        _wrapped(IntegrityError, psycopg2.errors.UniqueViolation("duplicate key")),
        _wrapped(ProgrammingError, psycopg2.errors.UndefinedColumn("no such column")),
        _wrapped(InternalError, psycopg2.errors.InFailedSqlTransaction("aborted")),
        ValueError("a bug"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_of_the_request_or_the_code_are_not_unavailability(error: BaseException) -> None:
    assert not is_unavailable(error)
