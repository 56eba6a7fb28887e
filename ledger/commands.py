"""Wallet commands as plain values: what a game server asked for, before it is decided.

Each movement command carries its posting rule as one small method: the commands
differ in which accounts they debit and credit, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from ledger.accounts import EXPIRED, PROMOTIONS, REVENUE, TREASURY, AccountRef
from ledger.postings import Posting, transfer


class CommandType(StrEnum):
    TOPUP = "topup"
    BONUS = "bonus"
    SPEND = "spend"
    TRANSFER = "transfer"
    HOLD = "hold"
    CAPTURE = "capture"
    RELEASE = "release"
    REVERSE = "reverse"
    EXPIRY = "expiry"
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"


class TransactionStatus(StrEnum):
    """A stored command's life: pending until its partition's drain decides it, then
    completed (its entries written) or rejected (no effect, with a reason)."""

    PENDING = "pending"
    COMPLETED = "completed"
    REJECTED = "rejected"

    @property
    def final(self) -> bool:
        return self is not TransactionStatus.PENDING


# The commands whose completed effect a reversal may undo.
REVERSIBLE = frozenset(
    {
        CommandType.TOPUP,
        CommandType.BONUS,
        CommandType.SPEND,
        CommandType.TRANSFER,
        CommandType.CAPTURE,
    }
)


@dataclass(frozen=True)
class WalletMovement:
    """Money between one user's wallet and a system account, in one asset.

    Top-up, bonus and spend differ only in their posting rule, and the rule is data:
    the system account on the other side, and which way the money goes.
    """

    type: ClassVar[CommandType]
    counterpart: ClassVar[str]
    credits_user: ClassVar[bool]
    user_id: str
    asset: str
    amount: int

    @property
    def subject(self) -> AccountRef:
        return AccountRef(self.user_id, self.asset)

    def postings(self) -> tuple[Posting, ...]:
        system = AccountRef(self.counterpart, self.asset)
        if self.credits_user:
            return transfer(system, self.subject, self.amount)
        return transfer(self.subject, system, self.amount)


@dataclass(frozen=True)
class TopUp(WalletMovement):
    """Currency bought with real money: @treasury -> user."""

    type: ClassVar[CommandType] = CommandType.TOPUP
    counterpart: ClassVar[str] = TREASURY
    credits_user: ClassVar[bool] = True


@dataclass(frozen=True)
class Bonus(WalletMovement):
    """Currency given away: @promotions -> user."""

    type: ClassVar[CommandType] = CommandType.BONUS
    counterpart: ClassVar[str] = PROMOTIONS
    credits_user: ClassVar[bool] = True
    reason: str | None = None


@dataclass(frozen=True)
class Spend(WalletMovement):
    """A purchase in the game: user -> @revenue, only from available funds."""

    type: ClassVar[CommandType] = CommandType.SPEND
    counterpart: ClassVar[str] = REVENUE
    credits_user: ClassVar[bool] = False
    item_id: str | None = None


@dataclass(frozen=True)
class Transfer:
    """User to user in one asset, from the payer's available funds."""

    type: ClassVar[CommandType] = CommandType.TRANSFER
    from_user_id: str
    to_user_id: str
    asset: str
    amount: int

    @property
    def subject(self) -> AccountRef:
        return AccountRef(self.from_user_id, self.asset)

    @property
    def payee(self) -> AccountRef:
        return AccountRef(self.to_user_id, self.asset)

    def postings(self) -> tuple[Posting, ...]:
        return transfer(self.subject, self.payee, self.amount)


@dataclass(frozen=True)
class Hold:
    """Reserve funds for a later capture: held += amount, no money moves yet."""

    type: ClassVar[CommandType] = CommandType.HOLD
    user_id: str
    asset: str
    amount: int
    expires_at: datetime

    @property
    def subject(self) -> AccountRef:
        return AccountRef(self.user_id, self.asset)


@dataclass(frozen=True)
class Capture:
    """Take all or part of an active hold: user -> @revenue; the rest is released."""

    type: ClassVar[CommandType] = CommandType.CAPTURE
    hold_id: str
    amount: int | None = None


@dataclass(frozen=True)
class Release:
    """Give an active hold's funds back to the wallet's available balance."""

    type: ClassVar[CommandType] = CommandType.RELEASE
    hold_id: str


@dataclass(frozen=True)
class Reverse:
    """Compensating postings for a completed movement, at most once."""

    type: ClassVar[CommandType] = CommandType.REVERSE
    transaction_id: str
    reason: str


@dataclass(frozen=True)
class Expiry:
    """Move what is left of a wallet's lots that expire at or before `expires_at` to
    @expired. The amount is decided when applied: spends accepted before the instant may
    have used the lots, and a hold keeps the lots it reserved."""

    type: ClassVar[CommandType] = CommandType.EXPIRY
    user_id: str
    asset: str
    expires_at: datetime

    @property
    def subject(self) -> AccountRef:
        return AccountRef(self.user_id, self.asset)

    def postings(self, amount: int) -> tuple[Posting, ...]:
        return transfer(self.subject, AccountRef(EXPIRED, self.asset), amount)


@dataclass(frozen=True)
class Freeze:
    """Stop a player's own debits in every asset until an unfreeze."""

    type: ClassVar[CommandType] = CommandType.FREEZE
    user_id: str
    reason: str


@dataclass(frozen=True)
class Unfreeze:
    """Let a frozen player debit again."""

    type: ClassVar[CommandType] = CommandType.UNFREEZE
    user_id: str
    reason: str | None = None


Movement = TopUp | Bonus | Spend | Transfer
Command = (
    TopUp
    | Bonus
    | Spend
    | Transfer
    | Hold
    | Capture
    | Release
    | Reverse
    | Expiry
    | Freeze
    | Unfreeze
)
