"""When a pending command may be applied: the ordering rules of the drain, as data.

The drain of a partition reads its oldest pending commands in acceptance order (`seq`)
and asks these functions which of them may run now. The database only answers the
questions (which commands are pending, the lowest pending `seq` of another partition
that touches a command's wallets); the decisions are here, so they can be tested
without one.

- A wallet's commands apply in acceptance order, across partitions too: a transfer
  credits a wallet of another partition, so a command waits while another partition
  holds an earlier pending command for one of its wallets, and everything behind a
  waiting command on the same wallet waits with it.
- The lowest pending `seq` anywhere never waits, so the system always progresses.
- A hold expires only once everything accepted before it was applied (the batch read
  every pending command and none waits) and a grace period after its `expires_at`, so
  a capture accepted in time is never beaten by the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Generic, TypeVar

from ledger.book import Applied
from ledger.commands import CommandType

# A wallet as the ordering rules see it: (ledger id, user id). All of a player's assets
# in one ledger are one wallet here: they live in one partition.
WalletKey = tuple[int, str]

T = TypeVar("T")

# How long after its expires_at a hold is expired (the database selects the due ones:
# `expires_at <= now() - grace`): an intake transaction that began before the expiry
# (a capture in time) has committed by then.
HOLD_EXPIRY_GRACE = timedelta(seconds=2)


def wallets_of(ledger_id: int, user_id: str, to_user_id: str | None) -> frozenset[WalletKey]:
    """The wallets a command reads or writes: its subject, and a payee if it has one."""
    if to_user_id:
        return frozenset({(ledger_id, user_id), (ledger_id, to_user_id)})
    return frozenset({(ledger_id, user_id)})


@dataclass
class Schedule(Generic[T]):
    """One batch's decision: the commands to apply now, in order, and the wallets whose
    commands wait (on another partition, or behind a waiting command)."""

    ready: list[T] = field(default_factory=list)
    waiting: set[WalletKey] = field(default_factory=set)


def schedule(
    pending: Iterable[T],
    wallets: Callable[[T], Set[WalletKey]],
    foreign_seq: Callable[[T], int | None],
    seq: Callable[[T], int],
) -> Schedule[T]:
    """Split a partition's pending commands (in `seq` order) into ready and waiting.

    `foreign_seq(c)` is the lowest seq of a pending command of another partition that
    touches one of `c`'s wallets, or None. A command waits when that is earlier than
    its own seq, or when one of its wallets already waits in this batch.
    """
    result: Schedule[T] = Schedule()
    for command in pending:
        touched = wallets(command)
        blocker = foreign_seq(command)
        if (blocker is not None and blocker < seq(command)) or touched & result.waiting:
            result.waiting |= touched
        else:
            result.ready.append(command)
    return result


def may_expire_holds(fetched: int, limit: int, waiting: Set[WalletKey]) -> bool:
    """Holds may be expired by this batch only when it read every pending command of
    the partition (fewer than the limit) and none of them waits: then nothing accepted
    before the expiry is still to be applied here."""
    return fetched < limit and not waiting


# The commands that may create the wallet they credit, and which side that is.
_CREDITS_SUBJECT = frozenset({CommandType.TOPUP, CommandType.BONUS})
_CREDITS_PAYEE = frozenset({CommandType.TRANSFER})


def credited_user(kind: CommandType, user_id: str, to_user_id: str | None) -> str | None:
    """The player whose wallet a command may create by crediting it (a top-up's or a
    bonus's subject, a transfer's payee), or None: other commands need the wallet to
    exist already (a debit of a missing wallet is insufficient funds)."""
    if kind in _CREDITS_SUBJECT:
        return user_id
    if kind in _CREDITS_PAYEE:
        return to_user_id
    return None


def final_amount(kind: CommandType, outcome: Applied, released: int | None = None) -> int | None:
    """The amount a completed command shows when it differs from the one it was
    accepted with: a capture shows what it took, a reversal and an expiry what they
    moved, a release what it freed (`released`, the hold's amount). None: unchanged."""
    if kind in (CommandType.CAPTURE, CommandType.REVERSE, CommandType.EXPIRY):
        return abs(outcome.postings[0].amount) if outcome.postings else 0
    if kind is CommandType.RELEASE:
        return released
    return None
