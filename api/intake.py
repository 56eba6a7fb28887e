"""Accepting commands: validate references, record them as pending, ring the doorbell.

The same path serves single requests and batches: a batch is a list of submissions
recorded in one database transaction, each accepted or refused on its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, text

import settings
from api.errors import ApiError
from api.metrics import COMMANDS_ACCEPTED
from db import intake, reads
from db.assets import catalog
from db.clients import Client
from db.engine import connect
from ledger import REVERSIBLE, CommandType, partition_of
from worker import doorbell


@dataclass(frozen=True)
class Submission:
    """A command whose body passed its schema: its type, key and validated fields."""

    kind: CommandType
    idempotency_key: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class Accepted:
    resource: dict[str, Any]
    created: bool


def submit(client: Client, submission: Submission) -> Accepted:
    """Accept one command (or find the one already accepted for its key); raise ApiError."""
    (result,) = submit_many(client, [submission])
    if isinstance(result, ApiError):
        raise result
    return result


def submit_many(
    client: Client, submissions: Sequence[Submission | ApiError]
) -> list[Accepted | ApiError]:
    """Accept each command on its own; the accepted ones are recorded in one transaction.

    Items that already failed validation are passed through as they are, so results
    stay in request order.
    """
    partitions = settings.load().partitions
    results: list[Accepted | ApiError | None] = []
    commands: list[tuple[int, intake.NewCommand]] = []
    with connect() as conn:
        references = _references(conn, submissions)
        for index, submission in enumerate(submissions):
            if isinstance(submission, ApiError):
                results.append(submission)
                continue
            try:
                commands.append((index, _command(client, submission, references, partitions)))
                results.append(None)
            except ApiError as error:
                results.append(error)
        recorded = intake.record(conn, [c for _, c in commands]) if commands else []
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
    doorbell.ring_many(s.row.partition for s in recorded if s.created)
    for stored in recorded:
        if stored.created:
            COMMANDS_ACCEPTED.labels(stored.row.type).inc()
    return [r for r in results if r is not None]


def _command(
    client: Client,
    submission: Submission,
    references: dict[uuid.UUID, Row[Any]],
    partitions: int,
) -> intake.NewCommand:
    fields = submission.fields
    kind = submission.kind
    if "callback_url" in fields:
        _check_callback(client, fields["callback_url"])
    common: dict[str, Any] = {
        "client_id": client.id,
        "idempotency_key": submission.idempotency_key,
        "fingerprint": intake.fingerprint(kind.value, fields),
        "type": kind.value,
        "metadata": fields.get("metadata"),
        "callback_url": fields.get("callback_url"),
        "reason": fields.get("reason"),
        "item_id": fields.get("item_id"),
    }
    if kind in (CommandType.CAPTURE, CommandType.RELEASE, CommandType.REVERSE):
        reference_id = fields["hold_id" if kind is not CommandType.REVERSE else "transaction_id"]
        ref = _referenced(kind, references.get(reference_id), reference_id, fields.get("amount"))
        return intake.NewCommand(
            **common,
            partition=ref.partition,
            user_id=ref.user_id,
            asset_id=ref.asset_id,
            amount=ref.amount if kind is CommandType.REVERSE else fields.get("amount"),
            reference_id=reference_id,
            # A transfer's reversal touches the payee too: it orders with the payee's
            # own commands like the transfer did.
            to_user_id=ref.to_user_id if kind is CommandType.REVERSE else None,
        )
    asset = catalog.by_code(fields["asset"])
    if asset is None:
        raise ApiError(
            422,
            "unknown_asset",
            f"There is no asset '{fields['asset']}'.",
            errors={"asset": ["Unknown asset."]},
        )
    user_id = fields["from_user_id"] if kind is CommandType.TRANSFER else fields["user_id"]
    return intake.NewCommand(
        **common,
        partition=partition_of(user_id, partitions),
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
    conn: Connection, submissions: Sequence[Submission | ApiError]
) -> dict[uuid.UUID, Row[Any]]:
    ids = [
        s.fields.get("hold_id") or s.fields.get("transaction_id")
        for s in submissions
        if isinstance(s, Submission)
    ]
    ids = [i for i in ids if i is not None]
    if not ids:
        return {}
    rows = conn.execute(
        text(
            "SELECT id, type, status, partition, user_id, to_user_id, asset_id, amount "
            "FROM transactions WHERE id = ANY(:ids)"
        ),
        {"ids": ids},
    ).all()
    return {row.id: row for row in rows}


def _check_callback(client: Client, url: str) -> None:
    if not client.allows_callback(url):
        raise ApiError(
            422,
            "callback_not_allowed",
            "callback_url must be http(s), without credentials, to one of this client's "
            f"callback_hosts: {sorted(client.callback_hosts)}.",
            errors={"callback_url": ["Not an allowed callback address."]},
        )
