"""Balances in time: a statement over [start, end) and the balance at an instant."""

from datetime import UTC, datetime, timedelta

import pytest

from ledger import Entry, Statement, StatementLine, balance_at, statement

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def t(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


HISTORY = (Entry(t(0), 100, "a"), Entry(t(10), -30, "b"), Entry(t(20), 50, "c"), Entry(t(30), -5))


def test_a_statement_has_the_opening_every_entry_with_its_balance_after_and_the_closing():
    result = statement(HISTORY, start=t(10), end=t(30))
    assert result == Statement(
        100, (StatementLine(HISTORY[1], 70), StatementLine(HISTORY[2], 120)), 120
    )


def test_the_window_includes_its_start_and_excludes_its_end():
    assert [line.entry for line in statement(HISTORY, start=t(10), end=t(20)).lines] == [HISTORY[1]]


def test_windows_that_meet_tile_the_history():
    first = statement(HISTORY, start=t(0), end=t(15))
    second = statement(HISTORY, start=t(15), end=t(60))
    assert first.closing_balance == second.opening_balance == 70
    assert len(first.lines) + len(second.lines) == len(HISTORY)
    assert second.closing_balance == 115


def test_the_opening_balance_may_come_from_the_database_with_only_the_windows_entries():
    assert statement(HISTORY[2:], opening_balance=70) == statement(HISTORY, start=t(20))


def test_an_empty_window_opens_and_closes_at_the_same_balance():
    assert statement(HISTORY, start=t(11), end=t(19)) == Statement(70, (), 70)


def test_the_balance_at_an_instant_is_everything_applied_before_it():
    assert balance_at(HISTORY, t(0)) == 0
    assert balance_at(HISTORY, t(0) + timedelta(microseconds=1)) == 100
    assert balance_at(HISTORY, t(25)) == 120
    assert balance_at(HISTORY, t(99)) == 115
    assert balance_at(HISTORY[2:], t(25), opening_balance=70) == 120


def test_the_statement_agrees_with_the_balance_at_its_ends():
    result = statement(HISTORY, start=t(5), end=t(25))
    assert result.opening_balance == balance_at(HISTORY, t(5))
    assert result.closing_balance == balance_at(HISTORY, t(25))


def test_entries_out_of_time_order_are_refused():
    with pytest.raises(ValueError):
        statement((Entry(t(10), 1), Entry(t(5), 1)))
