"""The drain: apply one partition's pending commands, in acceptance order, in batches.

One database transaction per batch: lock the partition, read its oldest pending
commands, lock the user wallets they touch in ascending id order, decide every command
in memory with the ledger's rules, then write all entries, balances, statuses and
hold states at once. A rejected command is a final status, not a failed batch.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Row, text

import resources
from db import batch as store
from db import callbacks as outbox
from db import controls, partitioning
from db.assets import catalog
from db.engine import autocommit, is_unavailable
from db.lease import DrainLease
from db.uow import UnitOfWork
from ledger import (
    DEFAULT_LEDGER_ID,
    SYSTEM_ACCOUNTS,
    AccountRef,
    Applied,
    Bonus,
    Book,
    Capture,
    Command,
    CommandType,
    Expiry,
    Freeze,
    Frozen,
    Hold,
    HoldState,
    HoldStatus,
    Posting,
    Record,
    Release,
    Reverse,
    Spend,
    TopUp,
    TransactionStatus,
    Transfer,
    Unfreeze,
    Wallet,
    scheduling,
)
from ledger.scheduling import WalletKey

log = logging.getLogger(__name__)

# The database unreachable (db.engine.is_unavailable): nothing can be decided, the
# commands stay pending and the next doorbell (or the sweeper) tries again. Any other
# failure may repeat on every retry of the same batch, so the command behind it is
# isolated instead.
HOLD_CHECK_SECONDS = 1.0


@dataclass
class Finished:
    """A command that reached a final status, for notifications after the commit."""

    id: uuid.UUID
    type: str
    status: str
    client_id: uuid.UUID
    callback_url: str | None
    accepted_at: Any
    code: str | None = None  # the rejection's code
    request_id: str | None = None  # of the request that submitted it (for the drain's log)
    ledger_id: int = DEFAULT_LEDGER_ID  # for the metrics' ledger label


@dataclass
class BatchResult:
    finished: list[Finished] = field(default_factory=list)
    expired: int = 0
    full: bool = False
    # Outbox rows written with the batch: callbacks to deliver once it is committed.
    callbacks: list[uuid.UUID] = field(default_factory=list)
    # Other partitions to ring after the commit (commands waiting on, or blocking, ours).
    ring: set[int] = field(default_factory=set)
    # Wallets the batch changed or left waiting, as (ledger id, user id).
    wallets: set[WalletKey] = field(default_factory=set)
    # Set by drain(), for the batch's log line (worker.observe).
    partition: int = -1
    seconds: float = 0.0

    def merge(self, other: BatchResult) -> None:
        self.finished.extend(other.finished)
        self.expired += other.expired
        self.callbacks.extend(other.callbacks)
        self.ring |= other.ring
        self.wallets |= other.wallets


@dataclass
class DrainResult:
    finished: list[Finished] = field(default_factory=list)
    expired: int = 0
    ring: set[int] = field(default_factory=set)
    # The budget ran out with commands still pending: ring the doorbell again.
    more: bool = False


def drain(
    partition: int,
    batch_size: int = 500,
    budget_seconds: float = 10.0,
    on_batch: Callable[[BatchResult], None] | None = None,
) -> DrainResult:
    """Apply batches until the partition has nothing pending or the budget is spent."""
    result = DrainResult()
    deadline = time.monotonic() + budget_seconds
    while True:
        started = time.monotonic()
        applied = apply_batch_isolating(partition, batch_size)
        applied.partition, applied.seconds = partition, time.monotonic() - started
        if on_batch is not None:
            on_batch(applied)
        result.finished.extend(applied.finished)
        result.expired += applied.expired
        result.ring |= applied.ring
        if not applied.full:
            return result
        if time.monotonic() >= deadline:
            result.more = True
            return result


def apply_batch_isolating(partition: int, batch_size: int) -> BatchResult:
    """apply_batch, but a command that makes its batch fail cannot stall the partition.

    On a failure the batch is retried one command at a time, and the command that
    fails on its own is rejected with `internal_error` (and logged): the rest of the
    partition goes on. A failure that does not repeat costs one retry.
    """
    try:
        return apply_batch(partition, batch_size)
    except BatchFailed as failure:
        log.error("batch of partition %s failed (%r); one at a time", partition, failure.cause)
    result = BatchResult()
    for _ in range(batch_size):
        try:
            one = apply_batch(partition, 1)
        except BatchFailed as failure:
            if failure.ids:
                one = _reject_poison(partition, failure.ids[0], failure.cause)
            else:  # expiring a hold failed: leave the holds for now, keep applying
                log.error("hold expiry in partition %s failed: %r", partition, failure.cause)
                one = apply_batch(partition, 1, expire_holds=False)
        result.merge(one)
        if not one.full:
            return result
    result.full = True
    return result


class Decision(NamedTuple):
    """What `_apply` decided for a batch: its result, the write still to send (with the
    COMMIT; None when there is none left), and whether there is anything to commit."""

    result: BatchResult
    write: tuple[str, dict[str, Any]] | None
    commit: bool


class BatchFailed(Exception):
    """A batch could not be applied for a reason that may repeat; `ids` are its commands."""

    def __init__(self, ids: list[uuid.UUID], cause: BaseException) -> None:
        super().__init__(f"batch of {len(ids)} failed: {cause!r}")
        self.ids = ids
        self.cause = cause


def apply_batch(partition: int, limit: int, expire_holds: bool = True) -> BatchResult:
    """Apply up to `limit` of the partition's oldest pending commands in one transaction.

    Three round trips for a batch without references: BEGIN with the lease and the read,
    the wallets' lock, then the write with its COMMIT and the wake-up query
    (`waiting_partitions`, asked right after the commit) in one message (db.uow).
    """
    rows: Sequence[Row[Any]] = ()
    woken: set[int] | None = None
    try:
        with UnitOfWork(pipelined=True) as uow:
            rows = store.pending_commands(uow.connection, partition, limit, uow.begin())
            applied = _apply(uow.connection, partition, rows, limit, expire_holds)
            if applied is None:
                return BatchResult()
            result = applied.result
            if applied.commit:
                sql, params = applied.write or (None, {})
                wake = bool(result.wallets)
                if wake:
                    params = {**params, **store.foreign_pending_params(result.wallets)}
                found = uow.commit(sql, params, then=store.FOREIGN_PENDING if wake else None)
                if found is not None:  # None: the wake-up query failed after the COMMIT
                    woken = {row.partition for row in store.others(partition, found)}
    except Exception as error:
        if is_unavailable(error):  # not this batch's fault: leave it pending
            raise
        raise BatchFailed([row.id for row in rows], error) from error
    # Nothing written (every command waits on another partition), or the wake-up query
    # failed after the COMMIT: the wake-up query on its own, after the transaction.
    result.ring |= woken if woken is not None else waiting_partitions(partition, result.wallets)
    return result


def waiting_partitions(partition: int, wallets: Set[WalletKey]) -> set[int]:
    """After a commit: the other partitions whose commands wait on these wallets.

    Asked of the database after the commit, so a command that arrives later sees this
    batch's effects and needs no waking. If the question cannot be asked (the database
    went away just after the commit), every other partition is rung instead: a ring
    costs little, a waiting command left to the sweeper costs seconds.
    """
    if not wallets:
        return set()
    try:
        with autocommit() as conn:
            return {row.partition for row in store.foreign_pending(conn, partition, wallets)}
    except Exception as error:
        if not is_unavailable(error):
            raise
        log.warning("wake-up query of partition %s failed, ringing all: %r", partition, error)
        return set(range(partitioning.last_known())) - {partition}


def _apply(
    conn: Any, partition: int, rows: Sequence[Row[Any]], limit: int, expire_holds: bool
) -> Decision | None:
    """Decide one batch inside the caller's transaction; None when idle."""
    # Which commands run now and which wait on another partition (ledger.scheduling).
    decided = scheduling.schedule(rows, _wallets, _foreign_seq, _seq)
    ready, waiting_wallets = decided.ready, decided.waiting
    settled = expire_holds and scheduling.may_expire_holds(len(rows), limit, waiting_wallets)
    due = _due_holds(conn, partition) if settled else []
    if not ready and not due:
        if not rows:
            return None
        return Decision(BatchResult(wallets=waiting_wallets), None, commit=False)

    # One book per ledger: a partition holds wallets of several ledgers, and the same
    # user id and asset code in two ledgers are two accounts (the book keys by code).
    books: dict[int, Book] = defaultdict(Book)
    # The stored lots of the holds in the books, given to them once the rules are known.
    hold_lots: dict[str, list[dict[str, Any]] | None] = {}
    _load_references(conn, books, ready, hold_lots)
    for hold in due:
        books[hold.ledger_id].holds[str(hold.id)] = _hold_state(hold)
        hold_lots[str(hold.id)] = hold.lots
    store.create_missing_wallets(_wallets_credited(ready))
    # Every wallet of every ledger in one statement: the one lock order (ascending id).
    locked = store.lock_wallets(conn, _wallets_touched(ready, books, due))
    for (owner, asset_id), account in locked.items():
        asset = catalog.by_id(asset_id)
        book = books[asset.ledger_id]
        wallet = book.wallets[AccountRef(owner, asset.code)] = Wallet(
            int(account.balance), account.held
        )
        if account.frozen_reason is not None and account.frozen_since is not None:
            book.frozen[owner] = Frozen(account.frozen_reason, account.frozen_since)
        rules = controls.rules_of(
            account.max_balance, account.spend_limit_24h, account.credit_lifetime_s
        )
        if controls.has_rules(rules):  # only assets with rules go in: rule-free costs nothing
            book.rules[asset.code] = rules
            if rules.credit_lifetime is not None:
                wallet.lots = controls.lots_of(account.lots, wallet.available)
            if rules.spend_limit_24h is not None:
                wallet.debits = controls.debits_of(account.recent_debits)
    _load_controls(conn, books, ready, hold_lots)
    outcomes = [
        books[row.ledger_id].execute(str(row.id), command_of(row), row.created_at) for row in ready
    ]
    for hold in due:
        books[hold.ledger_id].expire(str(hold.id))

    batch = _batch_write(conn, partition, ready, outcomes, books, locked)
    write = store.write_statement(batch)
    notify = [(r.id, r.client_id, r.callback_url) for r in ready if r.callback_url]
    if notify and write is not None:
        # An outbox row's payload is the transaction as the write made it final: the
        # write goes first, and the COMMIT (apply_batch) on its own.
        conn.execute(text(write[0]), write[1])
        write = None
    callbacks = outbox.record(conn, notify)
    finished = [
        Finished(
            row.id,
            row.type,
            outcome.status,
            row.client_id,
            row.callback_url,
            row.created_at,
            outcome.code,
            row.request_id,
            row.ledger_id,
        )
        for row, outcome in zip(ready, batch.outcomes, strict=True)
    ]
    result = BatchResult(
        finished,
        len(due),
        # A batch that left commands waiting stops the drain: the partition it waits
        # on rings this one again once it has applied what was in the way.
        full=len(rows) == limit and not waiting_wallets,
        callbacks=callbacks,
        # Every finished command's wallets, not only changed ones: a command waiting on
        # a transfer that was rejected must be woken as surely as one whose transfer
        # completed.
        wallets={w for row in ready for w in _wallets(row)} | waiting_wallets,
    )
    return Decision(result, write, commit=True)


def _due_holds(conn: Any, partition: int) -> Sequence[Row[Any]]:
    """Holds to expire, looked for at most once a second per partition: expiry promises
    seconds, and a busy partition should not pay a query per batch for it."""
    now = time.monotonic()
    checked = _HOLDS_CHECKED.get()
    if now - checked.get(partition, 0.0) < HOLD_CHECK_SECONDS:
        return []
    checked[partition] = now
    return store.due_holds(conn, partition, 200, scheduling.HOLD_EXPIRY_GRACE.total_seconds())


# When each partition last looked for due holds, in this process (monotonic seconds).
_HOLDS_CHECKED: resources.Resource[dict[int, float]] = resources.Resource(
    "worker.drain.holds_checked", dict
)


def _load_controls(
    conn: Any,
    books: dict[int, Book],
    rows: Sequence[Row[Any]],
    hold_lots: dict[str, list[dict[str, Any]] | None],
) -> None:
    """What the controls need beyond the locked wallets: the lots of holds of assets
    with a lifetime, and the freezes of players a freeze or unfreeze names (they may
    have no wallet). Nothing is read for a rule-free batch."""
    for book in books.values():
        if not book.rules:
            continue
        for hold in book.holds.values():
            rules = book.rules.get(hold.account.asset)
            if rules is not None and rules.credit_lifetime is not None:
                hold.lots = controls.lots_of(hold_lots.get(hold.id), hold.amount)
    players = {
        (r.ledger_id, r.user_id)
        for r in rows
        if r.type in (CommandType.FREEZE, CommandType.UNFREEZE)
        and r.user_id not in books[r.ledger_id].frozen
    }
    if players:
        for (ledger_id, user_id), (reason, since) in store.frozen_players(conn, players).items():
            books[ledger_id].frozen[user_id] = Frozen(reason, since)


def _wallets(row: Row[Any]) -> frozenset[WalletKey]:
    return scheduling.wallets_of(row.ledger_id, row.user_id, row.to_user_id)


def _foreign_seq(row: Row[Any]) -> int | None:
    return row.foreign_seq  # type: ignore[no-any-return]


def _seq(row: Row[Any]) -> int:
    return row.seq  # type: ignore[no-any-return]


def command_of(row: Row[Any]) -> Command:
    """The ledger command a stored pending transaction stands for."""
    kind = CommandType(row.type)
    if kind is CommandType.FREEZE:
        return Freeze(row.user_id, row.reason or "")
    if kind is CommandType.UNFREEZE:
        return Unfreeze(row.user_id, row.reason)
    asset = catalog.by_id(row.asset_id).code
    if kind is CommandType.TOPUP:
        return TopUp(row.user_id, asset, row.amount)
    if kind is CommandType.BONUS:
        return Bonus(row.user_id, asset, row.amount, row.reason)
    if kind is CommandType.SPEND:
        return Spend(row.user_id, asset, row.amount, row.item_id)
    if kind is CommandType.TRANSFER:
        return Transfer(row.user_id, row.to_user_id, asset, row.amount)
    if kind is CommandType.HOLD:
        return Hold(row.user_id, asset, row.amount, row.expires_at)
    if kind is CommandType.CAPTURE:
        return Capture(str(row.reference_id), row.amount)
    if kind is CommandType.RELEASE:
        return Release(str(row.reference_id))
    if kind is CommandType.EXPIRY:
        return Expiry(row.user_id, asset, row.expires_at)
    return Reverse(str(row.reference_id), row.reason or "")


def _load_references(
    conn: Any,
    books: dict[int, Book],
    rows: Sequence[Row[Any]],
    hold_lots: dict[str, list[dict[str, Any]] | None],
) -> None:
    """Put into each ledger's book the holds and originals its commands refer to (the
    intake found them in the command's own ledger; the foreign key keeps it so)."""
    ids = {row.reference_id for row in rows if row.reference_id is not None}
    if not ids:
        return
    referenced = store.referenced(conn, ids)
    completed = [r.id for r in referenced if r.status == TransactionStatus.COMPLETED]
    entries = store.entries_of(conn, completed)
    for ref in referenced:
        book = books[ref.ledger_id]
        asset = catalog.by_id(ref.asset_id).code
        if ref.type == CommandType.HOLD and ref.hold_status is not None:
            book.holds[str(ref.id)] = _hold_state(ref)
            hold_lots[str(ref.id)] = ref.lots
        book.records[str(ref.id)] = Record(
            type=CommandType(ref.type),
            completed=ref.status == TransactionStatus.COMPLETED,
            subject=AccountRef(ref.user_id, asset),
            postings=tuple(
                Posting(AccountRef(e.owner, catalog.by_id(e.asset_id).code), e.amount)
                for e in entries.get(ref.id, ())
            ),
            reversed_by=str(ref.reversed_by) if ref.reversed_by else None,
        )


def _hold_state(row: Row[Any]) -> HoldState:
    return HoldState(
        id=str(row.id),
        account=AccountRef(row.user_id, catalog.by_id(row.asset_id).code),
        amount=row.amount,
        expires_at=row.expires_at,
        status=HoldStatus(row.hold_status),
    )


def _wallets_touched(
    rows: Sequence[Row[Any]], books: dict[int, Book], due: Sequence[Row[Any]]
) -> set[tuple[str, int]]:
    """Every user wallet the batch may read or write, as (owner, asset id): an asset id
    names its ledger too."""
    # A freeze or unfreeze (no asset) touches no wallet.
    touched = {(row.user_id, row.asset_id) for row in rows if row.asset_id is not None}
    touched |= {(row.to_user_id, row.asset_id) for row in rows if row.to_user_id}
    touched |= {(hold.user_id, hold.asset_id) for hold in due}
    for ledger_id, book in books.items():
        for record in book.records.values():
            for posting in record.postings:
                if not posting.account.is_system:
                    touched.add((posting.account.owner, _asset_id(ledger_id, posting.account)))
    return touched


def _asset_id(ledger_id: int, account: AccountRef) -> int:
    asset = catalog.by_code(ledger_id, account.asset)
    assert asset is not None, f"no asset {account.asset} in ledger {ledger_id}"
    return asset.id


def _wallets_credited(rows: Sequence[Row[Any]]) -> set[tuple[str, int]]:
    """Wallets that a command may create (ledger.scheduling.credited_user)."""
    credited = (
        (scheduling.credited_user(CommandType(r.type), r.user_id, r.to_user_id), r.asset_id)
        for r in rows
    )
    return {(user, asset_id) for user, asset_id in credited if user is not None}


def _batch_write(
    conn: Any,
    partition: int,
    rows: Sequence[Row[Any]],
    outcomes: Sequence[Applied | Any],
    books: dict[int, Book],
    locked: dict[tuple[str, int], store.AccountRow],
) -> store.BatchWrite:
    """Translate the books' decisions into rows: account ids, statuses, hold states."""
    write = store.BatchWrite()
    asset_ids = {row.asset_id for row in rows if row.asset_id is not None}
    shards = store.system_shards(conn, partition, SYSTEM_ACCOUNTS, asset_ids) if asset_ids else {}

    def account_id(ledger_id: int, account: AccountRef) -> int:
        asset_id = _asset_id(ledger_id, account)
        if account.is_system:
            return shards[(account.owner, asset_id)]
        return locked[(account.owner, asset_id)].id

    for row, outcome in zip(rows, outcomes, strict=True):
        if isinstance(outcome, Applied):
            for posting in outcome.postings:
                target = account_id(row.ledger_id, posting.account)
                write.entries.append((row.id, target, posting.amount))
                if posting.account.is_system:
                    write.system_deltas[target] = (
                        write.system_deltas.get(target, 0) + posting.amount
                    )
            write.outcomes.append(
                store.Decided(
                    row.id,
                    TransactionStatus.COMPLETED,
                    balance_after=outcome.balance_after,
                    amount=_final_amount(row, outcome, books[row.ledger_id]),
                )
            )
        else:
            write.outcomes.append(
                store.Decided(
                    row.id, TransactionStatus.REJECTED, outcome.code.value, outcome.message
                )
            )
    for ledger_id, book in books.items():
        for account in book.changed_wallets:
            wallet = book.wallets[account]
            rules = book.rules.get(account.asset) if book.rules else None
            if rules is None:
                write.wallets.append((account_id(ledger_id, account), wallet.balance, wallet.held))
                continue
            lifetime = rules.credit_lifetime is not None
            write.controlled.append(
                (
                    account_id(ledger_id, account),
                    wallet.balance,
                    wallet.held,
                    controls.lots_json(wallet.lots) if lifetime else None,
                    controls.soonest(wallet.lots) if lifetime else None,
                    controls.debits_json(wallet.debits)
                    if rules.spend_limit_24h is not None
                    else None,
                )
            )
        write.hold_statuses.update({uuid.UUID(k): v.value for k, v in book.hold_changes.items()})
        write.reversals.update({uuid.UUID(k): uuid.UUID(v) for k, v in book.reversals.items()})
        if book.rules:
            for hold_id, status in book.hold_changes.items():
                hold = book.holds[hold_id]
                rules = book.rules.get(hold.account.asset)
                if status is HoldStatus.ACTIVE and rules and rules.credit_lifetime is not None:
                    write.hold_lots[uuid.UUID(hold_id)] = controls.lots_json(hold.lots)
        _freezes(write, ledger_id, book, rows)
    return write


def _freezes(write: store.BatchWrite, ledger_id: int, book: Book, rows: Sequence[Row[Any]]) -> None:
    """The freezes the book changed, with the freeze transaction that made each one (the
    one accepted at its `since`)."""
    if not book.changed_freezes:
        return
    freeze_ids = {
        (row.user_id, row.created_at): row.id
        for row in rows
        if row.ledger_id == ledger_id and row.type == CommandType.FREEZE
    }
    for user_id, frozen in sorted(book.changed_freezes.items()):
        if frozen is None:
            write.unfreezes.append((ledger_id, user_id))
        else:
            freeze_id = freeze_ids[(user_id, frozen.since)]
            write.freezes.append((ledger_id, user_id, frozen.reason, frozen.since, freeze_id))


def _final_amount(row: Row[Any], outcome: Applied, book: Book) -> int | None:
    """ledger.scheduling.final_amount; a release shows its hold's amount."""
    kind = CommandType(row.type)
    released = book.holds[str(row.reference_id)].amount if kind is CommandType.RELEASE else None
    return scheduling.final_amount(kind, outcome, released)


def _reject_poison(partition: int, tx_id: uuid.UUID, error: BaseException) -> BatchResult:
    """Reject the command that fails even on its own, and only that one (by id)."""
    with UnitOfWork() as uow:
        DrainLease.take(uow.connection, partition)  # one drain of a partition at a time
        row = store.reject_alone(
            uow.connection, tx_id, "internal_error", "the command could not be applied"
        )
        if row is None:  # someone else finished it meanwhile
            return BatchResult(full=True)
        log.error(
            "rejected command %s of partition %s: it cannot be applied: %r", tx_id, partition, error
        )
        callbacks = outbox.record(
            uow.connection, [(row.id, row.client_id, row.callback_url)] if row.callback_url else []
        )
        uow.commit()
    return BatchResult(
        finished=[
            Finished(
                row.id,
                row.type,
                TransactionStatus.REJECTED,
                row.client_id,
                row.callback_url,
                row.created_at,
                "internal_error",
                ledger_id=row.ledger_id,
            )
        ],
        full=True,
        callbacks=callbacks,
        ring=waiting_partitions(partition, _wallets(row)),
    )
