"""Player and currency controls: balance caps, spend limits, expiring credits, freezes.

Each rule is a pure function of data the drain can load with the rows it already
locks; `Book` applies them in acceptance order. An asset with no rules (`AssetRules()`,
or no entry in `Book.rules`) behaves exactly as before and pays one dict look-up per
posting: its wallets keep no lots and no debits.

The rules and the decisions behind them:

- `max_balance`: a credit that would take a player's posted balance above it is
  rejected `balance_limit_exceeded`, whole (no partial credit); exactly at the cap is
  fine. It applies to every credit of a player: top-up, bonus, transfer in, and a
  reversal that credits. Lowering the cap never touches balances already above it:
  they can only go down until they are under it again.
- `spend_limit_24h`: what a player may debit of their own accord (spend, transfer out,
  capture) within any rolling 24 hours, rejected `spend_limit_exceeded` beyond it.
  "Now" is the command's acceptance time, never the drain's clock: a decision is then a
  pure function of the command sequence, the same on a replay or on another worker. A
  debit counts from its acceptance instant for exactly 24 hours: the window at `now` is
  (now - 24h, now]. A hold is not a debit (it only reserves); its capture is, for the
  captured amount. A reversal of a spend does not give the limit back (the limit caps
  what a player can move out in a day, and a refund is an operator's act, not a
  player's), and a reversal that debits a player (a charged-back top-up, a transfer
  taken back from the payee) is not the player's debit and does not count.
- `credit_lifetime` (seconds): every credit of the asset is a lot that expires that long
  after the credit was accepted. A wallet's free lots always sum to its available
  balance, and each active hold keeps the lots it reserved (so a wallet's lots plus its
  active holds' lots sum to its balance). Debits and holds take the lots that expire
  soonest first. A lot counts as expired for every command accepted at or after its
  `expires_at`, whether or not the expiry command has been applied yet; the `expiry`
  command then moves what is left of it to `@expired`. Held funds are protected: a
  hold keeps its lots, so a lot that expires under an active hold can still be
  captured; whatever of it the hold gives back (release, hold expiry, the uncaptured
  rest) returns to the wallet already expired and the next expiry takes it. A transfer
  hands the payer's lots to the payee with their expiry (otherwise two players could
  keep credits alive for ever by passing them back and forth); a credit from a system
  account (top-up, bonus, a reversed spend or capture) is a fresh lot. Credits from
  before the asset had a lifetime are a lot that never expires (`expires_at=None`),
  taken last.
- Freeze: per player, across the player's wallets. While frozen, the player's own
  debits (spend, transfer out, hold, capture) are rejected `wallet_frozen`; credits,
  releases, hold expiries, credit expiries and reversals (an operator's correction,
  often the reason for the freeze) still apply. Freeze and unfreeze are ordered
  commands, so a debit accepted before the freeze is decided before it and one accepted
  after is decided after it. Freezing a frozen player or unfreezing one who is not
  frozen completes with no effect (the first freeze's reason and instant stay): the
  state asked for holds, and replays of one command are the API's idempotency key's job.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ledger.accounts import MAX_AMOUNT
from ledger.errors import LedgerError

SPEND_WINDOW = timedelta(hours=24)
EXPIRING_SHOWN = 10


@dataclass(frozen=True)
class AssetRules:
    """An asset's optional controls; the default has none and costs nothing."""

    max_balance: int | None = None
    spend_limit_24h: int | None = None
    credit_lifetime: int | None = None  # seconds

    def __post_init__(self) -> None:
        for name in ("max_balance", "spend_limit_24h", "credit_lifetime"):
            value = getattr(self, name)
            if value is not None and not 1 <= value <= MAX_AMOUNT:
                raise ValueError(f"{name} must be between 1 and {MAX_AMOUNT}, not {value}")

    @property
    def balance_cap(self) -> int:
        """The highest balance a credit may leave in a player's wallet."""
        return MAX_AMOUNT if self.max_balance is None else self.max_balance

    def lot_expiry(self, accepted_at: datetime) -> datetime | None:
        """When a credit accepted at `accepted_at` expires; None for an asset without."""
        if self.credit_lifetime is None:
            return None
        return accepted_at + timedelta(seconds=self.credit_lifetime)


@dataclass(frozen=True)
class Lot:
    """Part of a balance that expires at one instant; None: credited before the asset
    had a lifetime, never expires."""

    amount: int
    expires_at: datetime | None = None

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class Debit:
    """A player's own debit (spend, transfer out, capture), for the rolling spend limit."""

    accepted_at: datetime
    amount: int


@dataclass(frozen=True)
class Frozen:
    """A player's wallets are frozen: why, and since which acceptance instant."""

    reason: str
    since: datetime


# --- Spend limit -------------------------------------------------------------------


def spend_room(limit: int, debits: Iterable[Debit], now: datetime) -> int:
    """How much more a player may debit at `now` under a rolling 24-hour limit."""
    return limit - spent_in_window(debits, now)


def spent_in_window(debits: Iterable[Debit], now: datetime) -> int:
    """The player's own debits in the window (now - 24h, now]."""
    start = now - SPEND_WINDOW
    return sum(d.amount for d in debits if d.accepted_at > start)


def recent_debits(debits: Iterable[Debit], now: datetime) -> tuple[Debit, ...]:
    """The debits that can still count for a command accepted at or after `now`: what a
    wallet needs to keep (or the drain to load) for the limit."""
    start = now - SPEND_WINDOW
    return tuple(d for d in debits if d.accepted_at > start)


# --- Lots --------------------------------------------------------------------------


def lots_total(lots: Iterable[Lot]) -> int:
    return sum(lot.amount for lot in lots)


def usable(lots: Iterable[Lot], now: datetime) -> int:
    """What of `lots` a command accepted at `now` may still debit or hold."""
    return sum(lot.amount for lot in lots if not lot.is_expired(now))


def add_lots(lots: tuple[Lot, ...], more: Iterable[Lot]) -> tuple[Lot, ...]:
    """`lots` with `more` merged in: one lot per instant, soonest first, never-expiring last."""
    merged: dict[datetime | None, int] = {}
    for lot in (*lots, *more):
        merged[lot.expires_at] = merged.get(lot.expires_at, 0) + lot.amount
    return tuple(sorted((Lot(n, at) for at, n in merged.items() if n), key=_soonest_first))


def take_lots(
    lots: tuple[Lot, ...], amount: int, now: datetime | None
) -> tuple[tuple[Lot, ...], tuple[Lot, ...]]:
    """Split off `amount`, soonest-expiring first: (taken, rest).

    With `now`, lots expired at `now` are skipped (they belong to the expiry); without,
    every lot counts (a hold's own lots, protected while it was active).
    """
    taken: list[Lot] = []
    rest: list[Lot] = []
    wanted = amount
    for lot in lots:
        if wanted == 0 or (now is not None and lot.is_expired(now)):
            rest.append(lot)
            continue
        part = min(wanted, lot.amount)
        taken.append(Lot(part, lot.expires_at))
        if part < lot.amount:
            rest.append(Lot(lot.amount - part, lot.expires_at))
        wanted -= part
    if wanted:
        raise LedgerError(f"lots {lots} cannot cover {amount}")
    return tuple(taken), tuple(rest)


def due_expiries(lots: Iterable[Lot], now: datetime) -> tuple[Lot, ...]:
    """The lots whose time has come at `now`, each with what is left of it: what a
    sweeper turns into `Expiry` commands (one per lot, `expires_at=lot.expires_at`)."""
    return tuple(lot for lot in lots if lot.is_expired(now))


def split_expired(
    lots: tuple[Lot, ...], cutoff: datetime
) -> tuple[tuple[Lot, ...], tuple[Lot, ...]]:
    """(lots expiring at or before `cutoff`, the rest)."""
    expired = tuple(lot for lot in lots if lot.is_expired(cutoff))
    return expired, tuple(lot for lot in lots if not lot.is_expired(cutoff))


def expiring(lots: Iterable[Lot], limit: int = EXPIRING_SHOWN) -> tuple[Lot, ...]:
    """The wallet's `expiring` view: lots that will expire, soonest first, at most
    `limit`. Held lots are not in it: they are protected while their hold is active."""
    dated = sorted((lot for lot in lots if lot.expires_at is not None), key=_soonest_first)
    return tuple(dated[:limit])


def unexpiring(amount: int) -> tuple[Lot, ...]:
    """The lots of a balance credited before its asset had a lifetime: what the drain
    loads for a wallet or a hold whose stored lots are NULL."""
    return (Lot(amount, None),) if amount else ()


_NEVER = datetime.max.replace(tzinfo=UTC)


def _soonest_first(lot: Lot) -> tuple[bool, datetime]:
    return (lot.expires_at is None, lot.expires_at or _NEVER)
