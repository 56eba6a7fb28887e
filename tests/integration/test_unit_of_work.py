"""The unit of work (db.uow): after-commit hooks run once the work is durable, in
order, and never for work that rolled back; db.engine.connect() is a unit of work."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from db.engine import connect
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
