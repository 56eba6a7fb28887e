"""The rules about what a command may name, each decided here once.

Pure predicates, used by the book when it decides a command and by the intake when it
refuses one early (a 422 before the command is stored): both ask the same function, so
the two can never disagree about a rule.
"""

from __future__ import annotations

from ledger.commands import REVERSIBLE, CommandType


def is_same_wallet_transfer(from_user_id: str, to_user_id: str) -> bool:
    """A transfer moves currency between two players: never from a wallet to itself."""
    return from_user_id == to_user_id


def is_reversible(kind: str, rejected: bool) -> bool:
    """A reversal may undo a topup, bonus, spend, transfer or capture that was not
    rejected. (The intake accepts a reversal of one still pending, which then becomes
    either; the book decides once the original is final.)"""
    return kind in REVERSIBLE and not rejected


def is_hold(kind: str) -> bool:
    """A capture or release names a hold, and nothing else."""
    return kind == CommandType.HOLD


def capture_exceeds_hold(amount: int | None, held: int) -> bool:
    """A capture takes at most what the hold reserved (no amount: all of it)."""
    return amount is not None and amount > held
