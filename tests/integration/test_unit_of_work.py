"""The unit of work (db.uow): after-commit hooks run once the work is durable, in
order, and never for work that rolled back; db.engine.connect() is a unit of work."""

from __future__ import annotations

import time

import psycopg2.extensions
import pytest
from sqlalchemy import text

from db.engine import autocommit, connect
from db.uow import UnitOfWork
from tests.support import unique


@pytest.fixture(autouse=True)
def _probe_table(database):
    with connect() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS uow_probe (code text NOT NULL)"))


def _count(code: str) -> int:
    with connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM uow_probe WHERE code = :c"), {"c": code}
        ).scalar_one()


def _insert(conn, code: str) -> None:
    conn.execute(text("INSERT INTO uow_probe (code) VALUES (:c)"), {"c": code})


@pytest.mark.parametrize("autocommit", [False, True])
def test_hooks_run_after_the_commit_in_order(autocommit):
    code, seen = unique("uow"), []
    with UnitOfWork(autocommit=autocommit) as uow:
        _insert(uow.connection, code)
        uow.after_commit(lambda: seen.append(("first", _count(code))))
        uow.after_commit(lambda: seen.append(("second", _count(code))))
        assert seen == []
        uow.commit()
        assert seen == []  # not before the block ends
    assert seen == [("first", 1), ("second", 1)]  # another connection sees the row


def test_hooks_never_run_for_work_that_rolled_back():
    code, seen = unique("uow"), []
    with pytest.raises(RuntimeError), UnitOfWork() as uow:
        _insert(uow.connection, code)
        uow.after_commit(lambda: seen.append("rang"))
        raise RuntimeError("before the commit")
    with UnitOfWork() as uow:
        _insert(uow.connection, code + "-uncommitted")
        uow.after_commit(lambda: seen.append("rang"))  # never committed
    assert seen == []
    assert _count(code) == 0 and _count(code + "-uncommitted") == 0


def test_a_failing_hook_does_not_undo_the_work_or_skip_the_others():
    code, seen = unique("uow"), []
    with UnitOfWork() as uow:
        _insert(uow.connection, code)
        uow.after_commit(lambda: 1 / 0)
        uow.after_commit(lambda: seen.append("second"))
        uow.commit()
    assert seen == ["second"] and _count(code) == 1


def test_connect_commits_on_success_and_rolls_back_on_error():
    code = unique("uow")
    with connect() as conn:
        _insert(conn, code)
    assert _count(code) == 1
    with pytest.raises(RuntimeError), connect() as conn:
        _insert(conn, code + "-x")
        raise RuntimeError("inside")
    assert _count(code + "-x") == 0


# -- pipelined: BEGIN with the first statement, COMMIT with the last -------------------

LOCK = 0x7E57


def _lock_is_free(key: int) -> bool:
    """Whether another session can take the transaction lock (LOCK, key) now."""
    with connect() as conn:
        return bool(
            conn.execute(
                text("SELECT pg_try_advisory_xact_lock(:ns, :k)"), {"ns": LOCK, "k": key}
            ).scalar_one()
        )


def _pipelined_lock(uow: UnitOfWork, key: int) -> None:
    uow.connection.execute(
        text(uow.begin() + "SELECT pg_advisory_xact_lock(:ns, :k)"), {"ns": LOCK, "k": key}
    )


def test_pipelined_work_commits_with_its_last_statement_and_reads_after_the_commit():
    code = unique("uow")
    with UnitOfWork(pipelined=True) as uow:
        _pipelined_lock(uow, 1)
        assert not _lock_is_free(1)  # one transaction, begun by the first statement
        _insert(uow.connection, code)
        assert _count(code) == 0  # not committed yet: another session does not see it
        rows = uow.commit(
            "INSERT INTO uow_probe (code) VALUES (:c)",
            {"c": code},
            then="SELECT count(*) AS n, pg_current_xact_id_if_assigned() AS x "
            "FROM uow_probe WHERE code = :c",
        )
    # The statement after the commit runs in a transaction of its own and sees both rows.
    assert [(row.n, row.x) for row in rows] == [(2, None)]
    assert _count(code) == 2 and _lock_is_free(1)


def test_pipelined_work_left_uncommitted_rolls_back_and_frees_its_locks():
    """The autocommit pool does not reset a connection: without the unit of work's own
    ROLLBACK the pooled connection would stay in the transaction, holding its lock."""
    code = unique("uow")
    with UnitOfWork(pipelined=True) as uow:
        _pipelined_lock(uow, 2)
        _insert(uow.connection, code)
    assert _lock_is_free(2) and _count(code) == 0
    with pytest.raises(RuntimeError), UnitOfWork(pipelined=True) as uow:
        _pipelined_lock(uow, 3)
        raise RuntimeError("inside")
    assert _lock_is_free(3)
    # A statement that failed inside the transaction: rolled back too, and the next
    # unit of work on the pool's connections is not in an aborted transaction.
    with pytest.raises(Exception, match="division by zero"), UnitOfWork(pipelined=True) as uow:
        _pipelined_lock(uow, 4)
        _insert(uow.connection, code)
        uow.commit("SELECT 1 / 0")
    assert _lock_is_free(4) and _count(code) == 0
    # The connection went back to the pool outside any transaction, and works.
    with UnitOfWork(pipelined=True) as uow:
        assert _transaction_status(uow) == psycopg2.extensions.TRANSACTION_STATUS_IDLE
        _pipelined_lock(uow, 5)
        uow.commit("INSERT INTO uow_probe (code) VALUES (:c)", {"c": code})
    assert _count(code) == 1


def _transaction_status(uow: UnitOfWork) -> int:
    return uow.connection.connection.dbapi_connection.info.transaction_status


def test_a_failure_after_the_commit_leaves_the_work_committed():
    """The statement sent after the COMMIT fails: the work is durable all the same, and
    the unit of work says so (no rows), so its after-commit hooks run."""
    code, seen = unique("uow"), []
    with UnitOfWork(pipelined=True) as uow:
        _pipelined_lock(uow, 7)
        uow.after_commit(lambda: seen.append("hook"))
        rows = uow.commit(
            "INSERT INTO uow_probe (code) VALUES (:c)", {"c": code}, then="SELECT 1/0"
        )
    assert rows is None and seen == ["hook"]
    assert _count(code) == 1 and _lock_is_free(7)


def test_a_connection_returned_inside_a_transaction_is_cleaned_before_reuse():
    """The autocommit pool's safety net (db.engine): whatever a caller left open on a
    connection, the next one to check it out finds no transaction and no lock."""
    with autocommit() as conn:
        conn.exec_driver_sql("BEGIN")
        conn.execute(text("SELECT pg_advisory_xact_lock(:ns, 8)"), {"ns": LOCK})
    assert _lock_is_free(8)
    with autocommit() as conn:
        status = conn.connection.dbapi_connection.info.transaction_status
    assert status == psycopg2.extensions.TRANSACTION_STATUS_IDLE


def test_pipelined_work_whose_rollback_fails_drops_its_connection(monkeypatch):
    with UnitOfWork(pipelined=True) as uow:
        _pipelined_lock(uow, 6)
        pid = uow.connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        real = uow.connection.exec_driver_sql

        def broken(sql, *args, **kwargs):
            if sql == "ROLLBACK":
                raise OSError("the network went away")
            return real(sql, *args, **kwargs)

        monkeypatch.setattr(uow.connection, "exec_driver_sql", broken)
    # The connection was dropped, not pooled: its session ends and the lock with it.
    deadline = time.monotonic() + 5
    while not _lock_is_free(6) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _lock_is_free(6)
    with connect() as conn:
        alive = conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
        ).scalar_one()
    assert alive == 0


def test_a_unit_of_work_is_not_both_autocommit_and_pipelined():
    with pytest.raises(ValueError):
        UnitOfWork(autocommit=True, pipelined=True)
