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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from db import batch as store
from db import callbacks as outbox
from db.assets import catalog
from db.uow import UnitOfWork
from ledger import (
    SYSTEM_ACCOUNTS,
    AccountRef,
    Applied,
    Bonus,
    Book,
    Capture,
    Command,
    CommandType,
    Hold,
    HoldState,
    HoldStatus,
    Posting,
    Record,
    Release,
    Reverse,
    Spend,
    TopUp,
    Transfer,
    Wallet,
)

log = logging.getLogger(__name__)

# The database is unreachable: nothing can be decided, the commands stay pending and
# the next doorbell (or the sweeper) tries again. Any other failure may repeat on every
# retry of the same batch, so the command behind it is isolated instead.
INFRASTRUCTURE_ERRORS = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)


@dataclass
class Finished:
    """A command that reached a final status, for notifications after the commit."""

    id: uuid.UUID
    type: str
    status: str
    client_id: uuid.UUID
    callback_url: str | None
    accepted_at: Any


@dataclass
class BatchResult:
    finished: list[Finished] = field(default_factory=list)
    expired: int = 0
    full: bool = False
    # Outbox rows written with the batch: callbacks to deliver once it is committed.
    callbacks: list[uuid.UUID] = field(default_factory=list)


@dataclass
class DrainResult:
    finished: list[Finished] = field(default_factory=list)
    expired: int = 0
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
        applied = apply_batch_isolating(partition, batch_size)
        if on_batch is not None:
            on_batch(applied)
        result.finished.extend(applied.finished)
        result.expired += applied.expired
        if not applied.full:
            return result
        if time.monotonic() >= deadline:
            result.more = True
            return result


def apply_batch_isolating(partition: int, batch_size: int) -> BatchResult:
    """apply_batch, but a command that makes its batch fail cannot stall the partition.

    On a deterministic failure the batch is retried one command at a time, and a
    command that fails on its own is rejected with `internal_error` (and logged): the
    rest of the partition goes on. A failure that does not repeat costs one retry.
    """
    try:
        return apply_batch(partition, batch_size)
    except INFRASTRUCTURE_ERRORS:
        raise
    except Exception:
        log.exception("batch of partition %s failed; applying it one command at a time", partition)
    result = BatchResult()
    for _ in range(batch_size):
        try:
            one = apply_batch(partition, 1)
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as error:
            one = _reject_poison(partition, error)
        result.finished.extend(one.finished)
        result.expired += one.expired
        if not one.full:
            return result
    result.full = True
    return result


def apply_batch(partition: int, limit: int) -> BatchResult:
    with UnitOfWork() as uow:
        conn = uow.connection
        store.lock_partition(conn, partition)
        rows = store.pending_commands(conn, partition, limit)
        # Expire holds only once everything accepted before now has been applied, so a
        # capture accepted in time is never beaten by the clock.
        due = store.due_holds(conn, partition, 200) if len(rows) < limit else []
        if not rows and not due:
            return BatchResult()

        commands = [command_of(row) for row in rows]
        book = Book()
        _load_references(conn, book, rows)
        for hold in due:
            book.holds[str(hold.id)] = _hold_state(hold)

        wallets = _wallets_touched(rows, book, due)
        store.create_missing_wallets(_wallets_credited(rows))
        locked = store.lock_wallets(conn, wallets)
        for (owner, asset_id), account in locked.items():
            book.wallets[AccountRef(owner, catalog.by_id(asset_id).code)] = Wallet(
                account.balance, account.held
            )

        outcomes = [
            book.execute(str(row.id), command, row.created_at)
            for row, command in zip(rows, commands, strict=True)
        ]
        for hold in due:
            book.expire(str(hold.id))

        write = _batch_write(conn, partition, rows, outcomes, book, locked)
        store.write(conn, write)
        callbacks = outbox.record(
            conn, [(r.id, r.client_id, r.callback_url) for r in rows if r.callback_url]
        )
        uow.commit()

    finished = [
        Finished(row.id, row.type, status, row.client_id, row.callback_url, row.created_at)
        for row, (_, status, *_rest) in zip(rows, write.outcomes, strict=True)
    ]
    return BatchResult(finished, len(due), full=len(rows) == limit, callbacks=callbacks)


def command_of(row: Row[Any]) -> Command:
    """The ledger command a stored pending transaction stands for."""
    asset = catalog.by_id(row.asset_id).code
    kind = CommandType(row.type)
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
    return Reverse(str(row.reference_id), row.reason or "")


def _load_references(conn: Any, book: Book, rows: Sequence[Row[Any]]) -> None:
    """Put into the book the holds and originals that the batch's commands refer to."""
    ids = {row.reference_id for row in rows if row.reference_id is not None}
    if not ids:
        return
    referenced = store.referenced(conn, ids)
    completed = [r.id for r in referenced if r.status == "completed"]
    entries = store.entries_of(conn, completed)
    for ref in referenced:
        asset = catalog.by_id(ref.asset_id).code
        if ref.type == CommandType.HOLD and ref.hold_status is not None:
            book.holds[str(ref.id)] = _hold_state(ref)
        book.records[str(ref.id)] = Record(
            type=CommandType(ref.type),
            completed=ref.status == "completed",
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
    rows: Sequence[Row[Any]], book: Book, due: Sequence[Row[Any]]
) -> set[tuple[str, int]]:
    """Every user wallet the batch may read or write, as (owner, asset id)."""
    touched = {(row.user_id, row.asset_id) for row in rows}
    touched |= {(row.to_user_id, row.asset_id) for row in rows if row.to_user_id}
    touched |= {(hold.user_id, hold.asset_id) for hold in due}
    for record in book.records.values():
        for posting in record.postings:
            if not posting.account.is_system:
                asset = catalog.by_code(posting.account.asset)
                assert asset is not None
                touched.add((posting.account.owner, asset.id))
    return touched


def _wallets_credited(rows: Sequence[Row[Any]]) -> set[tuple[str, int]]:
    """Wallets that a command may create: the receiving side of a top-up, bonus, transfer."""
    credited = {(r.user_id, r.asset_id) for r in rows if r.type in ("topup", "bonus")}
    credited |= {(r.to_user_id, r.asset_id) for r in rows if r.type == "transfer"}
    return credited


def _batch_write(
    conn: Any,
    partition: int,
    rows: Sequence[Row[Any]],
    outcomes: Sequence[Applied | Any],
    book: Book,
    locked: dict[tuple[str, int], store.AccountRow],
) -> store.BatchWrite:
    """Translate the book's decisions into rows: account ids, statuses, hold states."""
    write = store.BatchWrite()
    asset_ids = {row.asset_id for row in rows}
    shards = store.system_shards(conn, partition, SYSTEM_ACCOUNTS, asset_ids) if asset_ids else {}

    def account_id(account: AccountRef) -> int:
        asset = catalog.by_code(account.asset)
        assert asset is not None
        if account.is_system:
            return shards[(account.owner, asset.id)]
        return locked[(account.owner, asset.id)].id

    for row, outcome in zip(rows, outcomes, strict=True):
        if isinstance(outcome, Applied):
            for posting in outcome.postings:
                target = account_id(posting.account)
                write.entries.append((row.id, target, posting.amount))
                if posting.account.is_system:
                    write.system_deltas[target] = (
                        write.system_deltas.get(target, 0) + posting.amount
                    )
            write.outcomes.append(
                (
                    row.id,
                    "completed",
                    None,
                    None,
                    outcome.balance_after,
                    _final_amount(row, outcome, book),
                )
            )
        else:
            write.outcomes.append(
                (row.id, "rejected", outcome.code.value, outcome.message, None, None)
            )
    for account in book.changed_wallets:
        wallet = book.wallets[account]
        write.wallets.append((account_id(account), wallet.balance, wallet.held))
    write.hold_statuses = {uuid.UUID(k): v.value for k, v in book.hold_changes.items()}
    write.reversals = {uuid.UUID(k): uuid.UUID(v) for k, v in book.reversals.items()}
    return write


def _final_amount(row: Row[Any], outcome: Applied, book: Book) -> int | None:
    """A capture shows what it took, a reversal what it moved back, a release what it
    freed; other commands keep the amount they were accepted with."""
    if row.type in (CommandType.CAPTURE, CommandType.REVERSE):
        return abs(outcome.postings[0].amount)
    if row.type == CommandType.RELEASE:
        return book.holds[str(row.reference_id)].amount
    return None


def _reject_poison(partition: int, error: Exception) -> BatchResult:
    """Reject the partition's next command, which fails even on its own."""
    with UnitOfWork() as uow:
        store.lock_partition(uow.connection, partition)
        rows = store.pending_commands(uow.connection, partition, 1)
        if not rows:
            return BatchResult()
        row = rows[0]
        log.error(
            "rejecting command %s of partition %s: it cannot be applied: %r",
            row.id,
            partition,
            error,
        )
        store.reject_alone(
            uow.connection, row.id, "internal_error", "the command could not be applied"
        )
        uow.commit()
    return BatchResult(
        finished=[
            Finished(row.id, row.type, "rejected", row.client_id, row.callback_url, row.created_at)
        ],
        full=True,
    )
