"""Balances in time: a wallet's statement over a window, and its balance at an instant.

Both are folds over the wallet's ledger entries in ledger order, each with the instant
its transaction was applied (completed_at: when the money moved). A window is
half-open, [start, end): windows that meet tile a history with nothing counted twice,
the opening balance of one is the closing balance of the one before, and the balance
"at" an instant is what stood just before it, so `statement(...).opening_balance ==
balance_at(..., start)` and `closing_balance == balance_at(..., end)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Entry:
    """One ledger entry of the wallet: signed amount (credit positive), when applied."""

    at: datetime
    amount: int
    transaction_id: str | None = None


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
    """The balance as it stood at instant `at`: every entry applied before it."""
    return statement(entries, opening_balance, end=at).closing_balance


def _in_order(entries: Iterable[Entry]) -> Iterable[Entry]:
    """The entries, refusing any out of time order: a window over them would lie."""
    last: datetime | None = None
    for entry in entries:
        if last is not None and entry.at < last:
            raise ValueError(f"entry {entry} is before the one at {last.isoformat()}")
        last = entry.at
        yield entry
