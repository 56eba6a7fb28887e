"""The rules: decide commands against the part of the ledger they touch.

A `Book` holds, in memory, the wallets, holds and earlier outcomes that one batch of
commands needs. `execute` decides one command and, when it is accepted, applies its
effect to the book at once, so the next command in the same batch sees it. The caller
(the worker's drain) loads the book from locked rows and writes back what changed in
the same database transaction.

The player and currency controls (ledger.controls) take part only for the assets
named in `rules` and the players named in `frozen`; see that module for the rules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from ledger.accounts import MAX_AMOUNT, REVENUE, AccountRef
from ledger.commands import (
    Capture,
    Command,
    CommandType,
    Expiry,
    Freeze,
    Hold,
    Release,
    Reverse,
    Transfer,
    Unfreeze,
    WalletMovement,
)
from ledger.controls import (
    AssetRules,
    Debit,
    Frozen,
    Lot,
    add_lots,
    lots_total,
    recent_debits,
    spend_room,
    split_expired,
    take_lots,
    usable,
)
from ledger.errors import LedgerError, NegativeAvailable, RejectionCode
from ledger.postings import Posting, check_balanced, transfer
from ledger.rules import capture_exceeds_hold, is_reversible, is_same_wallet_transfer


class HoldStatus(StrEnum):
    ACTIVE = "active"
    CAPTURED = "captured"
    RELEASED = "released"
    EXPIRED = "expired"


@dataclass
class Wallet:
    """A user's balance in one asset: posted `balance`, reserved `held`.

    `lots` (only for an asset with a credit lifetime) are the unreserved credits,
    soonest to expire first, summing to `available`; `debits` (only for an asset with a
    spend limit) are the player's own debits that still count in the 24-hour window.
    """

    balance: int = 0
    held: int = 0
    lots: tuple[Lot, ...] = ()
    debits: tuple[Debit, ...] = ()

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
    # For an asset with a credit lifetime: the lots the hold reserved, protected from
    # expiry while it is active. They sum to `amount`.
    lots: tuple[Lot, ...] = ()


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
    # None for a freeze or unfreeze: they concern a player, not one wallet.
    subject: AccountRef | None
    balance_after: int | None


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
    # The controls: rules by asset code (an asset not here has none), frozen players by
    # user id, and the freezes the batch changed (None: unfrozen).
    rules: dict[str, AssetRules] = field(default_factory=dict)
    frozen: dict[str, Frozen] = field(default_factory=dict)
    changed_freezes: dict[str, Frozen | None] = field(default_factory=dict)

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
        if isinstance(command, Transfer) and is_same_wallet_transfer(
            command.from_user_id, command.to_user_id
        ):
            return Rejected(RejectionCode.SAME_ACCOUNT, "cannot transfer to the same wallet")
        if isinstance(command, WalletMovement | Transfer):
            own_debit = isinstance(command, Transfer) or not command.credits_user
            return self._post(command.postings(), command.subject, accepted_at, own_debit)
        if isinstance(command, Hold):
            return self._hold(tx_id, command, accepted_at)
        if isinstance(command, Capture):
            return self._capture(command, accepted_at)
        if isinstance(command, Release):
            return self._release(command, accepted_at)
        if isinstance(command, Expiry):
            return self._expire_lots(command, accepted_at)
        if isinstance(command, Freeze | Unfreeze):
            return self._freeze(command, accepted_at)
        return self._reverse(tx_id, command, accepted_at)

    def _post(
        self,
        postings: Iterable[Posting],
        subject: AccountRef,
        now: datetime,
        own_debit: bool = False,
        taken: tuple[Lot, ...] | None = None,
    ) -> Outcome:
        """Apply balanced postings if no user wallet goes below zero or over its cap.

        `own_debit`: the subject debits of its own accord (spend, transfer out, capture),
        so a freeze and the spend limit apply. `taken`: the lots the subject's debit
        takes, already split off by the caller (a capture's or an expiry's); otherwise
        a debit takes the soonest lots still alive at `now`.
        """
        postings = tuple(postings)
        check_balanced(postings)
        deltas: dict[AccountRef, int] = defaultdict(int)
        for posting in postings:
            if not posting.account.is_system:
                deltas[posting.account] += posting.amount
        if own_debit and (self.frozen or self.rules):
            refused = self._refuse_own_debit(subject, -deltas[subject], now)
            if refused is not None:
                return refused
        controlled = False
        for account, delta in deltas.items():
            wallet = self.wallet(account)
            rules = self.rules.get(account.asset) if self.rules else None
            spendable, cap = wallet.available, MAX_AMOUNT
            if rules is not None:
                controlled = True
                cap = rules.balance_cap
                if taken is None and rules.credit_lifetime is not None:
                    spendable = usable(wallet.lots, now)
            if spendable + delta < 0:
                return Rejected(
                    RejectionCode.INSUFFICIENT_FUNDS,
                    f"{account.owner} has {spendable} {account.asset} available, needs {-delta}",
                )
            if delta > 0 and wallet.balance + delta > cap:
                return Rejected(
                    RejectionCode.BALANCE_LIMIT_EXCEEDED,
                    f"{account.owner}'s {account.asset} balance would exceed {cap}",
                )
        for account, delta in deltas.items():
            self.wallet(account).balance += delta
            self.changed_wallets.add(account)
        if controlled:
            self._track_controls(deltas, subject, now, own_debit, taken)
        return Applied(postings, subject, self.wallet(subject).balance)

    def _track_controls(
        self,
        deltas: dict[AccountRef, int],
        subject: AccountRef,
        now: datetime,
        own_debit: bool,
        taken: tuple[Lot, ...] | None,
    ) -> None:
        """Keep the lots and the spend window of the wallets just posted to."""
        # Debits first, so that a transfer's lots are taken before the payee gets them.
        handed_on: tuple[Lot, ...] = ()
        for account, delta in sorted(deltas.items(), key=lambda item: item[1]):
            rules = self.rules.get(account.asset)
            if rules is None:
                continue
            wallet = self.wallet(account)
            if rules.credit_lifetime is not None:
                handed_on = self._move_lots(wallet, rules, delta, now, taken, handed_on)
            if own_debit and account == subject and rules.spend_limit_24h is not None:
                wallet.debits = (*recent_debits(wallet.debits, now), Debit(now, -delta))

    def _move_lots(
        self,
        wallet: Wallet,
        rules: AssetRules,
        delta: int,
        now: datetime,
        taken: tuple[Lot, ...] | None,
        handed_on: tuple[Lot, ...],
    ) -> tuple[Lot, ...]:
        """Take a debit's lots from the wallet, or add a credit's; returns the lots a
        debit gave up, for a player credited by the same postings (a transfer)."""
        if delta < 0:
            if taken is not None:
                return taken
            taken, wallet.lots = take_lots(wallet.lots, -delta, now)
            return taken
        carried, handed_on = take_lots(handed_on, min(delta, lots_total(handed_on)), None)
        fresh = delta - lots_total(carried)
        expires_at = rules.lot_expiry(now)
        new = (*carried, Lot(fresh, expires_at)) if fresh else carried
        wallet.lots = add_lots(wallet.lots, new)
        return handed_on

    def _refuse_own_debit(self, account: AccountRef, amount: int, now: datetime) -> Rejected | None:
        """A freeze or the spend limit refusing a player's own debit; None if neither."""
        frozen = self.frozen.get(account.owner) if self.frozen else None
        if frozen is not None:
            return _frozen(account.owner, frozen)
        rules = self.rules.get(account.asset)
        if rules is not None and rules.spend_limit_24h is not None:
            room = spend_room(rules.spend_limit_24h, self.wallet(account).debits, now)
            if amount > room:
                return Rejected(
                    RejectionCode.SPEND_LIMIT_EXCEEDED,
                    f"{account.owner} may debit {max(room, 0)} more {account.asset} "
                    f"in 24 hours (limit {rules.spend_limit_24h}), needs {amount}",
                )
        return None

    def _hold(self, tx_id: str, command: Hold, now: datetime) -> Outcome:
        frozen = self.frozen.get(command.user_id) if self.frozen else None
        if frozen is not None:
            return _frozen(command.user_id, frozen)
        wallet = self.wallet(command.subject)
        rules = self.rules.get(command.asset) if self.rules else None
        lifetime = rules is not None and rules.credit_lifetime is not None
        spendable = usable(wallet.lots, now) if lifetime else wallet.available
        if spendable < command.amount:
            return Rejected(
                RejectionCode.INSUFFICIENT_FUNDS,
                f"{command.user_id} has {spendable} {command.asset} available, "
                f"needs {command.amount}",
            )
        reserved: tuple[Lot, ...] = ()
        if lifetime:
            reserved, wallet.lots = take_lots(wallet.lots, command.amount, now)
        wallet.held += command.amount
        self.changed_wallets.add(command.subject)
        self.holds[tx_id] = HoldState(
            tx_id, command.subject, command.amount, command.expires_at, lots=reserved
        )
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
        if capture_exceeds_hold(amount, hold.amount):
            return Rejected(
                RejectionCode.CAPTURE_EXCEEDS_HOLD,
                f"capture of {amount} exceeds hold of {hold.amount}",
            )
        if self.frozen or self.rules:
            refused = self._refuse_own_debit(hold.account, amount, accepted_at)
            if refused is not None:
                return refused
        # Release the whole hold first: the captured part then leaves from posted funds
        # (and the hold's own lots) reserved for exactly this, so it can never be short.
        captured = self._end_hold(hold, HoldStatus.CAPTURED, keep=amount)
        outcome = self._post(
            transfer(hold.account, AccountRef(REVENUE, hold.account.asset), amount),
            hold.account,
            accepted_at,
            own_debit=True,
            taken=captured,
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

    def _end_hold(self, hold: HoldState, status: HoldStatus, keep: int = 0) -> tuple[Lot, ...]:
        """End a hold; its lots go back to the wallet, but for the `keep` soonest (a
        capture's), which are returned. Lots that expired under the hold go back
        expired: the protection lasts as long as the hold."""
        wallet = self.wallet(hold.account)
        wallet.held -= hold.amount
        self.changed_wallets.add(hold.account)
        hold.status = status
        self.hold_changes[hold.id] = status
        rules = self.rules.get(hold.account.asset) if self.rules else None
        if rules is None or rules.credit_lifetime is None:
            return ()
        if lots_total(hold.lots) != hold.amount:
            # The drain loads a hold placed before the asset had a lifetime with
            # controls.unexpiring(amount): anything else is a broken invariant.
            raise LedgerError(f"hold {hold.id}'s lots {hold.lots} do not cover {hold.amount}")
        kept, rest = take_lots(hold.lots, keep, None)
        wallet.lots = add_lots(wallet.lots, rest)
        return kept

    def _expire_lots(self, command: Expiry, accepted_at: datetime) -> Outcome:
        account = command.subject
        if command.expires_at > accepted_at:
            return Rejected(
                RejectionCode.NOTHING_TO_EXPIRE,
                f"nothing of {account.owner}'s {account.asset} expires before "
                f"{command.expires_at.isoformat()}",
            )
        wallet = self.wallet(account)
        expired, rest = split_expired(wallet.lots, command.expires_at)
        amount = lots_total(expired)
        if amount == 0:
            return Rejected(
                RejectionCode.NOTHING_TO_EXPIRE,
                f"{account.owner} has no unreserved {account.asset} expiring by "
                f"{command.expires_at.isoformat()}",
            )
        wallet.lots = rest
        outcome = self._post(command.postings(amount), account, accepted_at, taken=expired)
        if isinstance(outcome, Rejected):  # pragma: no cover - lots never exceed available
            raise LedgerError(outcome.message)
        return outcome

    def _freeze(self, command: Freeze | Unfreeze, accepted_at: datetime) -> Outcome:
        """Freeze or unfreeze a player; one already in that state completes unchanged."""
        user = command.user_id
        if isinstance(command, Freeze) and user not in self.frozen:
            self.frozen[user] = self.changed_freezes[user] = Frozen(command.reason, accepted_at)
        elif isinstance(command, Unfreeze) and user in self.frozen:
            del self.frozen[user]
            self.changed_freezes[user] = None
        return Applied((), None, None)

    def _reverse(self, tx_id: str, command: Reverse, accepted_at: datetime) -> Outcome:
        original = self.records.get(command.transaction_id)
        if original is None or not is_reversible(original.type, rejected=not original.completed):
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
        outcome = self._post(
            (p.reversed() for p in original.postings), original.subject, accepted_at
        )
        if isinstance(outcome, Applied):
            original.reversed_by = tx_id
            self.reversals[command.transaction_id] = tx_id
        return outcome


def _frozen(user_id: str, frozen: Frozen) -> Rejected:
    return Rejected(
        RejectionCode.WALLET_FROZEN,
        f"{user_id}'s wallets are frozen since {frozen.since.isoformat()}: {frozen.reason}",
    )
