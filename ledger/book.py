"""The rules: decide commands against the part of the ledger they touch.

A `Book` holds, in memory, the wallets, holds and earlier outcomes that one batch of
commands needs. `execute` decides one command and, when it is accepted, applies its
effect to the book at once, so the next command in the same batch sees it. The caller
(the worker's drain) loads the book from locked rows and writes back what changed in
the same database transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from ledger.accounts import MAX_AMOUNT, REVENUE, AccountRef
from ledger.commands import (
    REVERSIBLE,
    Capture,
    Command,
    CommandType,
    Hold,
    Release,
    Reverse,
    Transfer,
    WalletMovement,
)
from ledger.errors import NegativeAvailable, RejectionCode
from ledger.postings import Posting, check_balanced, transfer


class HoldStatus(StrEnum):
    ACTIVE = "active"
    CAPTURED = "captured"
    RELEASED = "released"
    EXPIRED = "expired"


@dataclass
class Wallet:
    """A user's balance in one asset: posted `balance`, reserved `held`."""

    balance: int = 0
    held: int = 0

    @property
    def available(self) -> int:
        return self.balance - self.held


@dataclass
class HoldState:
    id: str
    account: AccountRef
    amount: int
    expires_at: datetime
    status: HoldStatus = HoldStatus.ACTIVE


@dataclass
class Record:
    """What a reversal needs to know of an earlier transaction."""

    type: CommandType
    completed: bool
    subject: AccountRef | None
    postings: tuple[Posting, ...] = ()
    reversed_by: str | None = None


@dataclass(frozen=True)
class Applied:
    postings: tuple[Posting, ...]
    subject: AccountRef
    balance_after: int


@dataclass(frozen=True)
class Rejected:
    code: RejectionCode
    message: str


Outcome = Applied | Rejected


@dataclass
class Book:
    wallets: dict[AccountRef, Wallet] = field(default_factory=dict)
    holds: dict[str, HoldState] = field(default_factory=dict)
    records: dict[str, Record] = field(default_factory=dict)
    # What the batch changed, for the caller to write back.
    changed_wallets: set[AccountRef] = field(default_factory=set)
    hold_changes: dict[str, HoldStatus] = field(default_factory=dict)
    reversals: dict[str, str] = field(default_factory=dict)

    def wallet(self, account: AccountRef) -> Wallet:
        """A user wallet; one the book has not seen is empty."""
        return self.wallets.setdefault(account, Wallet())

    def execute(self, tx_id: str, command: Command, accepted_at: datetime) -> Outcome:
        """Decide one command; if accepted, apply it to the book before returning."""
        outcome = self._decide(tx_id, command, accepted_at)
        self.records[tx_id] = Record(
            type=command.type,
            completed=isinstance(outcome, Applied),
            subject=outcome.subject if isinstance(outcome, Applied) else None,
            postings=outcome.postings if isinstance(outcome, Applied) else (),
        )
        return outcome

    def expire(self, hold_id: str) -> None:
        """An active hold whose time ran out: its funds become available again."""
        hold = self.holds[hold_id]
        if hold.status is HoldStatus.ACTIVE:
            self._end_hold(hold, HoldStatus.EXPIRED)

    def _decide(self, tx_id: str, command: Command, accepted_at: datetime) -> Outcome:
        if isinstance(command, Transfer) and command.from_user_id == command.to_user_id:
            return Rejected(RejectionCode.SAME_ACCOUNT, "cannot transfer to the same wallet")
        if isinstance(command, WalletMovement | Transfer):
            return self._post(command.postings(), command.subject)
        if isinstance(command, Hold):
            return self._hold(tx_id, command)
        if isinstance(command, Capture):
            return self._capture(command, accepted_at)
        if isinstance(command, Release):
            return self._release(command, accepted_at)
        return self._reverse(tx_id, command)

    def _post(self, postings: Iterable[Posting], subject: AccountRef) -> Outcome:
        """Apply balanced postings if no user wallet goes below zero or over the limit."""
        postings = tuple(postings)
        check_balanced(postings)
        deltas: dict[AccountRef, int] = defaultdict(int)
        for posting in postings:
            if not posting.account.is_system:
                deltas[posting.account] += posting.amount
        for account, delta in deltas.items():
            wallet = self.wallet(account)
            if wallet.available + delta < 0:
                return Rejected(
                    RejectionCode.INSUFFICIENT_FUNDS,
                    f"{account.owner} has {wallet.available} {account.asset} available, "
                    f"needs {-delta}",
                )
            if wallet.balance + delta > MAX_AMOUNT:
                return Rejected(
                    RejectionCode.BALANCE_LIMIT_EXCEEDED,
                    f"{account.owner}'s {account.asset} balance would exceed {MAX_AMOUNT}",
                )
        for account, delta in deltas.items():
            self.wallet(account).balance += delta
            self.changed_wallets.add(account)
        return Applied(postings, subject, self.wallet(subject).balance)

    def _hold(self, tx_id: str, command: Hold) -> Outcome:
        wallet = self.wallet(command.subject)
        if wallet.available < command.amount:
            return Rejected(
                RejectionCode.INSUFFICIENT_FUNDS,
                f"{command.user_id} has {wallet.available} {command.asset} available, "
                f"needs {command.amount}",
            )
        wallet.held += command.amount
        self.changed_wallets.add(command.subject)
        self.holds[tx_id] = HoldState(tx_id, command.subject, command.amount, command.expires_at)
        self.hold_changes[tx_id] = HoldStatus.ACTIVE
        return Applied((), command.subject, wallet.balance)

    def _active_hold(self, hold_id: str, accepted_at: datetime) -> HoldState | Rejected:
        """The hold a capture or release acts on, if it is still active when accepted."""
        hold = self.holds.get(hold_id)
        if hold is not None and hold.status is HoldStatus.ACTIVE and accepted_at >= hold.expires_at:
            # Accepted after the hold ran out: the hold expires now, whatever beat did.
            self._end_hold(hold, HoldStatus.EXPIRED)
        if hold is None or hold.status is not HoldStatus.ACTIVE:
            status = hold.status.value if hold else "not applied"
            return Rejected(RejectionCode.HOLD_NOT_ACTIVE, f"hold {hold_id} is {status}")
        return hold

    def _capture(self, command: Capture, accepted_at: datetime) -> Outcome:
        hold = self._active_hold(command.hold_id, accepted_at)
        if isinstance(hold, Rejected):
            return hold
        amount = hold.amount if command.amount is None else command.amount
        if amount > hold.amount:
            return Rejected(
                RejectionCode.CAPTURE_EXCEEDS_HOLD,
                f"capture of {amount} exceeds hold of {hold.amount}",
            )
        # Release the whole hold first: the captured part then leaves from posted funds
        # that were reserved for exactly this, so it can never be short.
        self._end_hold(hold, HoldStatus.CAPTURED)
        outcome = self._post(
            transfer(hold.account, AccountRef(REVENUE, hold.account.asset), amount), hold.account
        )
        if isinstance(outcome, Rejected):  # pragma: no cover - impossible while held <= balance
            raise NegativeAvailable(outcome.message)
        return outcome

    def _release(self, command: Release, accepted_at: datetime) -> Outcome:
        hold = self._active_hold(command.hold_id, accepted_at)
        if isinstance(hold, Rejected):
            return hold
        self._end_hold(hold, HoldStatus.RELEASED)
        return Applied((), hold.account, self.wallet(hold.account).balance)

    def _end_hold(self, hold: HoldState, status: HoldStatus) -> None:
        self.wallet(hold.account).held -= hold.amount
        self.changed_wallets.add(hold.account)
        hold.status = status
        self.hold_changes[hold.id] = status

    def _reverse(self, tx_id: str, command: Reverse) -> Outcome:
        original = self.records.get(command.transaction_id)
        if original is None or original.type not in REVERSIBLE or not original.completed:
            return Rejected(
                RejectionCode.NOT_REVERSIBLE,
                f"transaction {command.transaction_id} is not a completed "
                "topup, bonus, spend, transfer or capture",
            )
        if original.reversed_by is not None:
            return Rejected(
                RejectionCode.ALREADY_REVERSED,
                f"transaction {command.transaction_id} was reversed by {original.reversed_by}",
            )
        assert original.subject is not None
        outcome = self._post((p.reversed() for p in original.postings), original.subject)
        if isinstance(outcome, Applied):
            original.reversed_by = tx_id
            self.reversals[command.transaction_id] = tx_id
        return outcome
