"""Accepting commands: validate references, judge idempotency, record, then ring.

One service function, `accept`, does the work for single requests and batches alike:
a batch is a list of submissions recorded in one statement, each accepted or refused
on its own. `submit` (one command per request) goes through a group commit (api.batcher)
so that concurrent requests share that statement; `submit_many` (a batch request) calls
it directly. Either way the doorbells ring after the commit, never before.

The ledger's rules that the intake applies early (a 422 before anything is stored) are
the ledger's own functions (ledger.rules), the ones the book decides with.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row

import resources
import settings
from api import batcher
from api.errors import ApiError, unavailable, unknown_asset
from api.metrics import COMMANDS_ACCEPTED
from db import batch as store
from db import intake, reads
from db.assets import catalog
from db.clients import Client
from db.engine import is_unavailable
from db.ledgers import ledgers
from db.uow import UnitOfWork
from ledger import (
    CommandType,
    TransactionStatus,
    capture_exceeds_hold,
    is_hold,
    is_reversible,
    wallet_route,
)
from worker import doorbell


@dataclass(frozen=True)
class Submission:
    """A command whose body passed its schema: its type, key and validated fields."""

    kind: CommandType
    idempotency_key: str
    fields: dict[str, Any]
    # The X-Request-Id of the request that carried it: stored, and logged by the drain.
    request_id: str | None = None


@dataclass(frozen=True)
class Accepted:
    resource: dict[str, Any]
    created: bool


Item = tuple[Client, Submission | ApiError]
Result = Accepted | ApiError


@dataclass
class Intake:
    """What `accept` decided: one result per item, in order, and what to do once the
    statement is committed (the partitions to ring, the commands to count)."""

    results: list[Result]
    ring: set[int] = field(default_factory=set)
    created: list[intake.Recorded] = field(default_factory=list)


def submit(client: Client, submission: Submission) -> Accepted:
    """Accept one command (or find the one already accepted for its key); raise ApiError.

    Concurrent single requests of this process share one INSERT and one commit (the
    group commit): each is answered once its own batch is durable.
    """
    try:
        return GROUP_COMMIT.get().submit((client, submission))
    except batcher.Timeout:
        # The committer is stuck on the database longer than any statement may run.
        raise unavailable("database") from None
    except ApiError:
        raise
    except Exception as error:
        if is_unavailable(error):  # a fresh error per request, not one shared by all
            raise unavailable("database") from error
        raise


def submit_many(client: Client, submissions: Sequence[Submission | ApiError]) -> list[Result]:
    """Accept each command of a batch on its own, in one statement, in request order."""
    return _record([(client, s) for s in submissions], ordered=True)


def _record(items: Sequence[Item], ordered: bool) -> list[Result]:
    """`accept` in a unit of work of its own (one statement), then what comes after
    the commit."""
    with UnitOfWork(autocommit=True) as uow:
        done = accept(uow.connection, items, ordered)
        # After the commit, never before: a drain must see what it is rung for.
        uow.after_commit(lambda: doorbell.ring_many(done.ring))
        uow.after_commit(lambda: _count(done.created))
        uow.commit()
    return done.results


def _count(created: list[intake.Recorded]) -> None:
    """Count the accepted commands: once per (type, ledger), not once per command."""
    counts = Counter((stored.row.type, stored.row.ledger_id) for stored in created)
    for (kind, ledger_id), count in counts.items():
        COMMANDS_ACCEPTED.labels(kind, ledgers.code_of(ledger_id)).inc(count)


def _group_commit(items: list[Item]) -> list[Result]:
    # A concurrent request's commands have no order among themselves to keep.
    return _record(items, ordered=False)


GROUP_COMMIT = resources.Resource(
    "api.intake.group_commit",
    lambda: batcher.Batcher(
        _group_commit,
        workers=settings.load().intake_committers,
        max_batch=settings.load().intake_max_batch,
        # The database is unreachable: 503 for every request of the group at once.
        fails_all=is_unavailable,
        name="group-commit",
    ),
    lambda group, after_fork: None if after_fork else group.close(),
)


def accept(conn: Connection, items: Sequence[Item], ordered: bool = True) -> Intake:
    """The intake service: accept each command on its own, in one statement.

    Items that already failed validation are passed through as they are, so results
    stay in order. With `ordered`, the order of `items` is their acceptance order.
    """
    results: list[Result | None] = []
    commands: list[tuple[int, intake.NewCommand]] = []
    references = _references(conn, items)
    for index, (client, submission) in enumerate(items):
        if isinstance(submission, ApiError):
            results.append(submission)
            continue
        try:
            commands.append((index, _command(client, submission, references)))
            results.append(None)
        except ApiError as error:
            results.append(error)
    recorded = intake.record(conn, [c for _, c in commands], ordered) if commands else []
    replayed = [r.row.id for r in recorded if r.replayed]
    current = reads.transactions(conn, replayed) if replayed else {}
    for (index, command), stored in zip(commands, recorded, strict=True):
        results[index] = _judge(command, stored, current)
    return Intake(
        [r for r in results if r is not None],
        # A replay of a command still pending rings too: its first attempt may have
        # committed and then lost its answer (and its ring) with the connection.
        ring={s.row.partition for s in recorded if s.row.status == TransactionStatus.PENDING},
        created=[s for s in recorded if s.created],
    )


def _judge(
    command: intake.NewCommand, stored: intake.Recorded, current: dict[uuid.UUID, dict[str, Any]]
) -> Result:
    """Idempotency: a new command, a replay of the same request, or a key reused."""
    if stored.created:
        return Accepted(reads.resource(stored.row, []), created=True)
    if stored.row.fingerprint != command.fingerprint:
        return ApiError(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was already used with a different request.",
        )
    return Accepted(current[stored.row.id], created=False)


# How each command type's fields become a stored command. A command names its wallet
# (`user`: the field holding the player), or a transaction it acts on (`reference`:
# the field holding its id, `check`: what that transaction must be, `from_reference`:
# what the command takes from it). A new command type is a new row.
Reference = Row[Any]


@dataclass(frozen=True)
class Shape:
    user: str | None = None
    reference: str | None = None
    check: Callable[[Reference, uuid.UUID, dict[str, Any]], None] | None = None
    # amount and payee from the referenced transaction instead of the fields
    from_reference: bool = False
    # a player in every asset of the ledger (freeze, unfreeze): no asset, no amount
    player_only: bool = False


def _must_be_hold(ref: Reference, ref_id: uuid.UUID, fields: dict[str, Any]) -> None:
    if not is_hold(ref.type):
        raise ApiError(422, "not_a_hold", f"Transaction {ref_id} is a {ref.type}, not a hold.")


def _must_be_hold_covering(ref: Reference, ref_id: uuid.UUID, fields: dict[str, Any]) -> None:
    _must_be_hold(ref, ref_id, fields)
    if capture_exceeds_hold(fields.get("amount"), ref.amount):
        raise ApiError(
            422,
            "validation_error",
            "A capture cannot take more than the hold.",
            errors={"amount": [f"Must be at most the held amount, {ref.amount}."]},
        )


def _must_be_reversible(ref: Reference, ref_id: uuid.UUID, fields: dict[str, Any]) -> None:
    if not is_reversible(ref.type, rejected=ref.status == TransactionStatus.REJECTED):
        raise ApiError(
            422,
            "not_reversible",
            "Only a completed topup, bonus, spend, transfer or capture can be reversed.",
        )


SHAPES: dict[CommandType, Shape] = {
    CommandType.TOPUP: Shape(user="user_id"),
    CommandType.BONUS: Shape(user="user_id"),
    CommandType.SPEND: Shape(user="user_id"),
    CommandType.TRANSFER: Shape(user="from_user_id"),
    CommandType.HOLD: Shape(user="user_id"),
    CommandType.CAPTURE: Shape(reference="hold_id", check=_must_be_hold_covering),
    CommandType.RELEASE: Shape(reference="hold_id", check=_must_be_hold),
    # A transfer's reversal touches the payee too: it orders with the payee's own
    # commands like the transfer did.
    CommandType.REVERSE: Shape(
        reference="transaction_id", check=_must_be_reversible, from_reference=True
    ),
    CommandType.FREEZE: Shape(user="user_id", player_only=True),
    CommandType.UNFREEZE: Shape(user="user_id", player_only=True),
}


def _command(
    client: Client,
    submission: Submission,
    references: dict[tuple[int, uuid.UUID], Reference],
) -> intake.NewCommand:
    """The command to store. Its partition is the database's to compute, from the
    wallet's route and the count in force when the row is written (db.partitioning):
    a capture, release or reversal goes with its wallet, like every other command."""
    fields = submission.fields
    kind = submission.kind
    shape = SHAPES[kind]
    if "callback_url" in fields:
        _check_callback(client, fields["callback_url"])
    common: dict[str, Any] = {
        "ledger_id": client.ledger_id,
        "client_id": client.id,
        "idempotency_key": submission.idempotency_key,
        "fingerprint": intake.fingerprint(kind.value, fields),
        "type": kind.value,
        "metadata": fields.get("metadata"),
        "callback_url": fields.get("callback_url"),
        "reason": fields.get("reason"),
        "item_id": fields.get("item_id"),
        "request_id": submission.request_id,
    }
    if shape.reference is not None:
        reference_id = fields[shape.reference]
        ref = references.get((client.ledger_id, reference_id))
        if ref is None:
            raise ApiError(404, "not_found", f"There is no transaction {reference_id}.")
        if shape.check is not None:
            shape.check(ref, reference_id, fields)
        return intake.NewCommand(
            **common,
            route=wallet_route(ref.user_id, client.ledger_id),
            user_id=ref.user_id,
            asset_id=ref.asset_id,
            amount=ref.amount if shape.from_reference else fields.get("amount"),
            reference_id=reference_id,
            to_user_id=ref.to_user_id if shape.from_reference else None,
        )
    assert shape.user is not None
    if shape.player_only:  # applied in the player's partition, like their other commands
        return intake.NewCommand(
            **common,
            route=wallet_route(fields[shape.user], client.ledger_id),
            user_id=fields[shape.user],
            asset_id=None,
        )
    asset = catalog.by_code(client.ledger_id, fields["asset"])
    if asset is None:
        raise unknown_asset(fields["asset"])
    user_id = fields[shape.user]
    return intake.NewCommand(
        **common,
        route=wallet_route(user_id, client.ledger_id),
        user_id=user_id,
        to_user_id=fields.get("to_user_id"),
        asset_id=asset.id,
        amount=fields["amount"],
        expires_in=fields.get("expires_in"),
    )


def _references(conn: Connection, items: Sequence[Item]) -> dict[tuple[int, uuid.UUID], Reference]:
    """The holds and transactions that captures, releases and reversals name, looked up
    in the caller's ledger only: another ledger's transaction is not found (404)."""
    wanted = {
        (client.ledger_id, ref)
        for client, s in items
        if isinstance(s, Submission)
        and (shape := SHAPES.get(s.kind)) is not None
        and (name := shape.reference) is not None
        and (ref := s.fields.get(name)) is not None
    }
    if not wanted:
        return {}
    ledger_ids, ids = zip(*wanted, strict=True)
    rows = store.referenced(conn, ids, ledger_ids=ledger_ids)
    return {(row.ledger_id, row.id): row for row in rows}


def _check_callback(client: Client, url: str) -> None:
    if not client.allows_callback(url):
        raise ApiError(
            422,
            "callback_not_allowed",
            "callback_url must be an http(s) URL, without credentials, whitespace or control "
            f"characters, to one of this client's callback_hosts: {sorted(client.callback_hosts)}.",
            errors={"callback_url": ["Not an allowed callback address."]},
        )
