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


def test_the_balance_at_an_instant_is_everything_applied_at_or_before_it():
    assert balance_at(HISTORY, t(0) - timedelta(microseconds=1)) == 0
    assert balance_at(HISTORY, t(0)) == 100
    assert balance_at(HISTORY, t(10) - timedelta(microseconds=1)) == 100
    assert balance_at(HISTORY, t(25)) == 120
    assert balance_at(HISTORY, t(99)) == 115
    assert balance_at(HISTORY[2:], t(25), opening_balance=70) == 120


def test_the_balance_at_each_entrys_instant_is_its_balance_after():
    for line in statement(HISTORY).lines:
        assert balance_at(HISTORY, line.entry.at) == line.balance_after


def test_the_statement_agrees_with_the_balance_at_its_ends():
    before = timedelta(microseconds=1)
    for start, end in ((t(5), t(25)), (t(10), t(30)), (t(0), t(31))):
        result = statement(HISTORY, start=start, end=end)
        assert result.opening_balance == balance_at(HISTORY, start - before)
        assert result.closing_balance == balance_at(HISTORY, end - before)


def test_a_window_ending_at_an_entrys_instant_leaves_it_to_the_next_window():
    ending = statement(HISTORY, start=t(0), end=t(10))
    starting = statement(HISTORY, start=t(10), end=t(11))
    assert [line.entry for line in ending.lines] == [HISTORY[0]]
    assert [line.entry for line in starting.lines] == [HISTORY[1]]
    assert ending.closing_balance == starting.opening_balance == 100
    # The balance at that instant already has it.
    assert balance_at(HISTORY, t(10)) == 70


def test_entries_out_of_time_order_are_refused():
    with pytest.raises(ValueError):
        statement((Entry(t(10), 1), Entry(t(5), 1)))
