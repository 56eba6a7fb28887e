"""Accepting commands: validate references, record them as pending, ring the doorbell.

The same path serves single requests and batches: a batch is a list of submissions
recorded in one database transaction, each accepted or refused on its own.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row, text
from sqlalchemy.exc import OperationalError

import resources
import settings
from api.errors import ApiError, unavailable, unknown_asset
from api.metrics import COMMANDS_ACCEPTED
from db import intake, reads
from db.assets import catalog
from db.clients import Client
from db.engine import autocommit, is_unavailable
from db.ledgers import ledgers
from ledger import REVERSIBLE, CommandType, wallet_route
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


def submit(client: Client, submission: Submission) -> Accepted:
    """Accept one command (or find the one already accepted for its key); raise ApiError.

    Concurrent single requests of this process share one INSERT and one commit (see
    GroupCommit): each is answered once its own batch is durable.
    """
    result = GROUP_COMMIT.get().accept(client, submission)
    if isinstance(result, BaseException) and is_unavailable(result):
        raise unavailable("database")  # a fresh error per request, not one shared by all
    if isinstance(result, BaseException):
        raise result
    return result


def submit_many(
    client: Client, submissions: Sequence[Submission | ApiError]
) -> list[Accepted | ApiError]:
    """Accept each command of a batch on its own, in one transaction, in request order."""
    return accept([(client, s) for s in submissions])


def accept(
    items: Sequence[tuple[Client, Submission | ApiError]], ordered: bool = True
) -> list[Accepted | ApiError]:
    """Accept each command on its own; the accepted ones are recorded in one statement.

    Items that already failed validation are passed through as they are, so results
    stay in order. With `ordered`, the order of `items` is their acceptance order.
    """
    results: list[Accepted | ApiError | None] = []
    commands: list[tuple[int, intake.NewCommand]] = []
    with autocommit() as conn:
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
            if stored.created:
                results[index] = Accepted(reads.resource(stored.row, []), created=True)
            elif stored.row.fingerprint != command.fingerprint:
                results[index] = ApiError(
                    422,
                    "idempotency_key_reused",
                    "This Idempotency-Key was already used with a different request.",
                )
            else:
                results[index] = Accepted(current[stored.row.id], created=False)
    # After the commit, never before: a drain must be able to see what it is rung for.
    # A replay of a command still pending rings too: its first attempt may have
    # committed and then lost its answer (and its ring) with the connection.
    doorbell.ring_many(s.row.partition for s in recorded if s.row.status == "pending")
    for stored in recorded:
        if stored.created:
            COMMANDS_ACCEPTED.labels(stored.row.type, ledgers.code_of(stored.row.ledger_id)).inc()
    return [r for r in results if r is not None]


class GroupCommit:
    """Group commit for single-command requests: one INSERT, one commit, many requests.

    Each accepted command costs a durable commit, a WAL flush that takes a millisecond
    or more on ordinary disks, and PostgreSQL flushes one at a time. So requests queue
    here, and each committer thread takes everything queued when it becomes free and
    records it in one statement: under load a commit carries tens of commands; a lone
    request goes straight through. A request is answered only after its own batch has
    committed, so a 202 still means durable. The committers start on first use, in the
    process that uses them (after gunicorn's fork).
    """

    def __init__(self, committers: int, max_batch: int, timeout: float = 40.0) -> None:
        self._committers = committers
        self._max_batch = max_batch
        self._timeout = timeout
        self._ready = threading.Condition()
        self._queue: list[_Waiting] = []
        self._started = False

    def accept(self, client: Client, submission: Submission) -> Accepted | BaseException:
        waiting = _Waiting(client, submission)
        with self._ready:
            if not self._started:
                self._start()
            self._queue.append(waiting)
            self._ready.notify()
        if not waiting.done.wait(self._timeout):
            # The committer is stuck on the database longer than any statement may run.
            return OperationalError("group commit", None, TimeoutError("no answer in time"))
        assert waiting.result is not None
        return waiting.result

    def _start(self) -> None:
        for n in range(self._committers):
            threading.Thread(
                target=self._commit_forever, name=f"group-commit-{n}", daemon=True
            ).start()
        self._started = True

    def _commit_forever(self) -> None:
        while True:
            with self._ready:
                while not self._queue:
                    self._ready.wait()
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
            try:
                outcomes = self._commit(batch)
            except BaseException as error:  # never leave a request waiting, never die
                outcomes = [error] * len(batch)
            for waiting, outcome in zip(batch, outcomes, strict=False):
                waiting.result = outcome
            for waiting in batch:
                if waiting.result is None:
                    waiting.result = RuntimeError("no outcome")
                waiting.done.set()

    def _commit(self, batch: list[_Waiting]) -> list[Accepted | BaseException]:
        try:
            return list(accept([(w.client, w.submission) for w in batch], ordered=False))
        except Exception as error:
            if is_unavailable(error):
                return [error] * len(batch)  # the database is unreachable: 503 for all
            if len(batch) == 1:
                return [error]
            # Something in one command broke the shared statement: it must fail only
            # its own request. Halves, not singles: one bad command among 200 costs
            # about 16 statements, not 200 commits.
            middle = len(batch) // 2
            return self._commit(batch[:middle]) + self._commit(batch[middle:])


@dataclass
class _Waiting:
    client: Client
    submission: Submission
    done: threading.Event = field(default_factory=threading.Event)
    result: Accepted | BaseException | None = None


GROUP_COMMIT = resources.Resource(
    "api.intake.group_commit",
    lambda: GroupCommit(
        committers=settings.load().intake_committers,
        max_batch=settings.load().intake_max_batch,
    ),
)


def _command(
    client: Client,
    submission: Submission,
    references: dict[tuple[int, uuid.UUID], Row[Any]],
) -> intake.NewCommand:
    """The command to store. Its partition is the database's to compute, from the
    wallet's route and the count in force when the row is written (db.partitioning):
    a capture, release or reversal goes with its wallet, like every other command."""
    fields = submission.fields
    kind = submission.kind
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
    if kind in (CommandType.CAPTURE, CommandType.RELEASE, CommandType.REVERSE):
        reference_id = fields["hold_id" if kind is not CommandType.REVERSE else "transaction_id"]
        ref = _referenced(
            kind,
            references.get((client.ledger_id, reference_id)),
            reference_id,
            fields.get("amount"),
        )
        return intake.NewCommand(
            **common,
            route=wallet_route(ref.user_id, client.ledger_id),
            user_id=ref.user_id,
            asset_id=ref.asset_id,
            amount=ref.amount if kind is CommandType.REVERSE else fields.get("amount"),
            reference_id=reference_id,
            # A transfer's reversal touches the payee too: it orders with the payee's
            # own commands like the transfer did.
            to_user_id=ref.to_user_id if kind is CommandType.REVERSE else None,
        )
    if kind in (CommandType.FREEZE, CommandType.UNFREEZE):
        # A player in every asset of the ledger: no asset, applied in their partition.
        return intake.NewCommand(
            **common,
            route=wallet_route(fields["user_id"], client.ledger_id),
            user_id=fields["user_id"],
            asset_id=None,
        )
    asset = catalog.by_code(client.ledger_id, fields["asset"])
    if asset is None:
        raise unknown_asset(fields["asset"])
    user_id = fields["from_user_id"] if kind is CommandType.TRANSFER else fields["user_id"]
    return intake.NewCommand(
        **common,
        route=wallet_route(user_id, client.ledger_id),
        user_id=user_id,
        to_user_id=fields.get("to_user_id"),
        asset_id=asset.id,
        amount=fields["amount"],
        expires_in=fields.get("expires_in"),
    )


def _referenced(
    kind: CommandType, ref: Row[Any] | None, ref_id: uuid.UUID, amount: int | None
) -> Row[Any]:
    """The hold a capture or release names, or the transaction a reversal names."""
    if ref is None:
        raise ApiError(404, "not_found", f"There is no transaction {ref_id}.")
    if kind is CommandType.REVERSE:
        if ref.type not in REVERSIBLE or ref.status == "rejected":
            raise ApiError(
                422,
                "not_reversible",
                "Only a completed topup, bonus, spend, transfer or capture can be reversed.",
            )
        return ref
    if ref.type != CommandType.HOLD:
        raise ApiError(422, "not_a_hold", f"Transaction {ref_id} is a {ref.type}, not a hold.")
    if amount is not None and amount > ref.amount:
        raise ApiError(
            422,
            "validation_error",
            "A capture cannot take more than the hold.",
            errors={"amount": [f"Must be at most the held amount, {ref.amount}."]},
        )
    return ref


def _references(
    conn: Connection, items: Sequence[tuple[Client, Submission | ApiError]]
) -> dict[tuple[int, uuid.UUID], Row[Any]]:
    """The holds and transactions that captures, releases and reversals name, looked up
    in the caller's ledger only: another ledger's transaction is not found (404)."""
    wanted = {
        (client.ledger_id, ref)
        for client, s in items
        if isinstance(s, Submission)
        and (ref := s.fields.get("hold_id") or s.fields.get("transaction_id")) is not None
    }
    if not wanted:
        return {}
    rows = conn.execute(
        text(
            "SELECT t.id, t.ledger_id, t.type, t.status, t.partition, t.user_id, t.to_user_id, "
            "t.asset_id, t.amount FROM transactions t "
            "JOIN unnest(CAST(:ledgers AS int[]), CAST(:ids AS uuid[])) AS w(ledger_id, id) "
            "ON t.ledger_id = w.ledger_id AND t.id = w.id"
        ),
        {"ledgers": [w[0] for w in wanted], "ids": [w[1] for w in wanted]},
    ).all()
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
