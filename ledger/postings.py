"""Postings and the one check every write goes through: do they balance?"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from ledger.accounts import AccountRef
from ledger.errors import UnbalancedPostings


class Direction(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"


@dataclass(frozen=True)
class Posting:
    """A signed movement on one account: a credit is positive, a debit negative."""

    account: AccountRef
    amount: int

    @property
    def direction(self) -> Direction:
        return Direction.CREDIT if self.amount > 0 else Direction.DEBIT

    def reversed(self) -> Posting:
        return Posting(self.account, -self.amount)


def transfer(debit: AccountRef, credit: AccountRef, amount: int) -> tuple[Posting, Posting]:
    """The two postings that move `amount` from one account to another."""
    return Posting(debit, -amount), Posting(credit, amount)


def residual(postings: Iterable[Posting]) -> dict[str, int]:
    """What is left over per asset: empty when the postings balance."""
    totals: dict[str, int] = defaultdict(int)
    for posting in postings:
        totals[posting.account.asset] += posting.amount
    return {asset: total for asset, total in totals.items() if total != 0}


def check_balanced(postings: Iterable[Posting]) -> None:
    """Raise unless every posting is non-zero and the set sums to zero in every asset."""
    postings = tuple(postings)
    if any(p.amount == 0 for p in postings):
        raise UnbalancedPostings(f"zero posting in {postings}")
    left = residual(postings)
    if left:
        raise UnbalancedPostings(f"postings do not balance: residual {left}")
