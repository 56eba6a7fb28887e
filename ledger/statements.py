"""Balances in time: a wallet's statement over a window, and its balance at an instant.

Both are folds over the wallet's ledger entries in time order, each with the instant
its transaction was applied (completed_at: when the money moved). The database makes
the instants of one wallet distinct and rising in ledger order (db.batch.write), so
time order is ledger order.

- A window is half-open, [start, end): windows that meet tile a history with nothing
  counted twice, and the closing balance of one is the opening balance of the next. A
  window ending at T leaves out an entry applied at T; the next one, from T, has it.
- The balance *at* an instant includes every entry applied at or before it: asked at
  an entry's own instant, it is that entry's balance after.

So `statement(...).closing_balance == balance_at(..., end - 1 microsecond)` (instants
are microseconds, PostgreSQL's and Python's resolution) and the balance after each
line is `balance_at(..., line.entry.at)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Entry:
    """One ledger entry of the wallet: signed amount (credit positive), when applied,
    and the id and type of its transaction."""

    at: datetime
    amount: int
    transaction_id: str | None = None
    type: str | None = None


@dataclass(frozen=True)
class StatementLine:
    entry: Entry
    balance_after: int


@dataclass(frozen=True)
class Statement:
    opening_balance: int
    lines: tuple[StatementLine, ...]
    closing_balance: int


def statement(
    entries: Iterable[Entry],
    opening_balance: int = 0,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Statement:
    """The statement for [start, end): entries before `start` fold into the opening
    balance, entries from `end` on are left out.

    `opening_balance` is the balance before the first of `entries`: the database may
    pass the window's entries only, with the balance before them (the sum of the
    earlier entries), or the whole history from zero.
    """
    balance = opening_balance
    opening = opening_balance
    lines: list[StatementLine] = []
    for entry in _in_order(entries):
        if end is not None and entry.at >= end:
            break
        balance += entry.amount
        if start is not None and entry.at < start:
            opening = balance
        else:
            lines.append(StatementLine(entry, balance))
    return Statement(opening, tuple(lines), balance)


def balance_at(entries: Iterable[Entry], at: datetime, opening_balance: int = 0) -> int:
    """The balance as it stood at instant `at`: every entry applied at or before it."""
    balance = opening_balance
    for entry in _in_order(entries):
        if entry.at > at:
            break
        balance += entry.amount
    return balance


def _in_order(entries: Iterable[Entry]) -> Iterable[Entry]:
    """The entries, refusing any out of time order: a window over them would lie."""
    last: datetime | None = None
    for entry in entries:
        if last is not None and entry.at < last:
            raise ValueError(f"entry {entry} is before the one at {last.isoformat()}")
        last = entry.at
        yield entry
