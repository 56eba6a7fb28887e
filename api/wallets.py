"""/v1/wallets: balances and history of a player (or of a system account)."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from flask import Response, request

from api import cursors, intake
from api.assets import asset_filter
from api.auth import current_client, require
from api.blueprint import Blueprint
from api.errors import ApiError, validation_error
from api.observability import request_id
from api.openapi import FREEZE_EXAMPLE, UNFREEZE_EXAMPLE
from api.schemas import (
    ACCOUNT_PATTERN,
    USER_ID_PATTERN,
    FreezeSchema,
    HistoryPageSchema,
    HistoryQuerySchema,
    StatementQuerySchema,
    StatementSchema,
    UnfreezeSchema,
    WalletQuerySchema,
    WalletSchema,
)
from api.transactions import (
    IDEMPOTENCY_HEADER,
    answers_a_command,
    respond,
    with_idempotency_key,
)
from db import controls, reads
from db.engine import autocommit
from ledger import SYSTEM_ACCOUNTS, CommandType, is_valid_user_id, statement

blp = Blueprint("wallets", __name__, url_prefix="/v1/wallets", description="Balances and history.")

ACCOUNT: dict[str, Any] = {
    "in": "path",
    "name": "user_id",
    "required": True,
    "description": "A player's id, or a system account (@treasury, @promotions, @revenue).",
    "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": ACCOUNT_PATTERN},
    "example": "alice",
}


@blp.route("/<user_id>", methods=["GET"], parameters=[ACCOUNT])
@require("read")
@blp.arguments(WalletQuerySchema(), location="query", as_kwargs=True)
@blp.response(200, WalletSchema)
@blp.secured(404, 422)
def get_wallet(user_id: str, at: datetime | None = None) -> Any:
    """A wallet's balances per asset: balance, held, available (or, with `?at=`, the
    balance as it stood at that instant)"""
    if at is not None:
        return wallet_at(user_id, at)
    balances: list[dict[str, Any]] = []
    frozen: dict[str, Any] | None = None
    if is_valid_user_id(user_id) or user_id in SYSTEM_ACCOUNTS:
        with autocommit() as conn:
            balances = reads.wallet(conn, current_client().ledger_id, user_id)
            frozen = controls.frozen(conn, current_client().ledger_id, user_id)
    if not balances:
        raise _no_wallet(user_id)
    if frozen is not None:
        frozen["since"] = reads.iso(frozen["since"])
    return {"user_id": user_id, "frozen": frozen, "balances": balances}


PLAYER = {
    **ACCOUNT,
    "description": "A player's id.",
    # Not a player any test or README example uses: the fuzz sends it for real.
    "example": "player-under-review",
    "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": USER_ID_PATTERN},
}


def _player_command(kind: CommandType, schema: type, example: dict[str, Any]) -> Any:
    """POST /v1/wallets/{user_id}/freeze or /unfreeze: a command like any other, applied
    in the player's partition in acceptance order, with the same idempotency rules."""

    @require("admin")
    @with_idempotency_key
    @blp.arguments(schema, as_kwargs=False, example=example)
    @answers_a_command(blp)
    @blp.secured(404, 422, parameters=[IDEMPOTENCY_HEADER])
    def view(fields: dict[str, Any], key: str, user_id: str) -> Any:
        if not is_valid_user_id(user_id):  # a system account is nobody to freeze
            raise _no_wallet(user_id)
        submission = intake.Submission(kind, key, {**fields, "user_id": user_id}, request_id())
        return respond(intake.submit(current_client(), submission))

    view.__name__ = f"submit_{kind.value}"
    view.__doc__ = (
        "Freeze a player: their debits (spend, transfer out, hold, capture) accepted "
        "after it are rejected wallet_frozen; credits, releases and expiries still apply"
        if kind is CommandType.FREEZE
        else "Unfreeze a player: their debits accepted after it apply again"
    )
    return view


blp.add_url_rule(
    "/<user_id>/freeze",
    view_func=_player_command(CommandType.FREEZE, FreezeSchema, FREEZE_EXAMPLE),
    methods=["POST"],
    parameters=[PLAYER],
)
blp.add_url_rule(
    "/<user_id>/unfreeze",
    view_func=_player_command(CommandType.UNFREEZE, UnfreezeSchema, UNFREEZE_EXAMPLE),
    methods=["POST"],
    parameters=[PLAYER],
)


@blp.route("/<user_id>/transactions", methods=["GET"], parameters=[ACCOUNT])
@require("read")
@blp.arguments(HistoryQuerySchema(), location="query", as_kwargs=True)
@blp.response(200, HistoryPageSchema)
@blp.secured(404, 422)
def wallet_history(
    user_id: str, limit: int, asset: str | None = None, cursor: str | None = None
) -> Any:
    """A player's transactions (as subject or payee), or those that posted to a system
    account, newest first, in keyset pages"""
    system = user_id in SYSTEM_ACCOUNTS
    # Checked before any query: an id no wallet can have (a NUL, a space) is not looked up.
    if not (system or is_valid_user_id(user_id)):
        raise _no_wallet(user_id)
    ledger_id = current_client().ledger_id
    asset_id = asset_filter(ledger_id, asset)
    # The two histories page by different keys: a cursor of one is refused by the other.
    kind = "entry" if system else "seq"
    before = cursors.decode_int(cursor, kind) if cursor else None
    with autocommit() as conn:
        if system:
            items, next_key = reads.system_history(
                conn, ledger_id, user_id, asset_id, limit, before
            )
        else:
            items, next_key = reads.wallet_history(
                conn, ledger_id, user_id, asset_id, limit, before
            )
        # Only an empty page asks: a full one already shows that the owner exists.
        if not items and not reads.is_known(conn, ledger_id, user_id):
            raise _no_wallet(user_id)
    return {"items": items, "next_cursor": cursors.encode(kind, next_key) if next_key else None}


def wallet_at(user_id: str, at: datetime) -> dict[str, Any]:
    """A player's posted balances as they stood at instant `at` (docs/controls.md)."""
    _refuse_system_account(user_id)
    if not is_valid_user_id(user_id):
        raise _no_wallet(user_id)
    with autocommit() as conn:
        balances = reads.balances_at(conn, current_client().ledger_id, user_id, at)
    if not balances:
        raise _no_wallet(user_id)
    return {"user_id": user_id, "at": reads.iso_exact(at), "balances": balances}


JSON = "application/json"
CSV = "text/csv"
CSV_COLUMNS = ("transaction_id", "type", "amount", "balance_after", "at")


@blp.route("/<user_id>/statement", methods=["GET"], parameters=[ACCOUNT])
@require("read")
@blp.arguments(StatementQuerySchema(), location="query", as_kwargs=True)
@blp.response(200, StatementSchema)
@blp.secured(404, 406, 422)
@blp.doc(
    responses={
        "200": {
            "description": "OK",
            "content": {
                JSON: {"schema": StatementSchema},
                CSV: {
                    "schema": {"type": "string"},
                    "example": "transaction_id,type,amount,balance_after,at\r\n"
                    ",opening_balance,,0,\r\n"
                    "6f1c0d2e-8a4b-4c1e-9d3f-2b7a5e6c8d90,topup,500,500,"
                    "2026-11-20T10:00:00.012345Z\r\n"
                    ",closing_balance,,500,2026-11-21T00:00:00.000000Z\r\n",
                },
            },
        }
    },
)
def wallet_statement(
    user_id: str, asset: str, start: datetime | None = None, end: datetime | None = None
) -> Any:
    """A player's statement of one asset over [from, to): the opening balance, every
    entry with the balance after it, the closing balance (JSON, or CSV with
    `Accept: text/csv`). At most 10000 entries: a longer window is 422
    `window_too_large`, ask for shorter ones (they tile: each closing balance is the
    next opening balance)"""
    wanted = request.accept_mimetypes.best_match([JSON, CSV]) if request.accept_mimetypes else JSON
    if wanted is None:
        raise ApiError(
            406, "not_acceptable", "A statement is sent as application/json or text/csv."
        )
    _refuse_system_account(user_id)
    if not is_valid_user_id(user_id):
        raise _no_wallet(user_id)
    ledger_id = current_client().ledger_id
    asset_id = asset_filter(ledger_id, asset)
    assert asset_id is not None
    limit = reads.STATEMENT_MAX_ENTRIES
    with autocommit() as conn:
        found = reads.statement_entries(conn, ledger_id, user_id, asset_id, start, end, limit + 1)
    if found is None:
        raise ApiError(404, "user_not_found", f"'{user_id}' has no {asset} wallet.")
    opening, entries, end = found
    if start is not None and start >= end:  # only with the default `to` (the schema checks)
        raise validation_error({"from": ["Must be before to (default: now)."]})
    if len(entries) > limit:
        raise ApiError(
            422,
            "window_too_large",
            f"The window holds more than {limit} entries: ask for shorter windows.",
            errors={"to": [f"At most {limit} entries per statement."]},
        )
    result = statement(entries, opening)
    body = {
        "user_id": user_id,
        "asset": asset,
        "from_": reads.iso_exact(start) if start is not None else None,
        "to": reads.iso_exact(end),
        "opening_balance": result.opening_balance,
        "entries": [
            {
                "transaction_id": line.entry.transaction_id,
                "type": line.entry.type,
                "amount": line.entry.amount,
                "balance_after": line.balance_after,
                "at": reads.iso_exact(line.entry.at),
            }
            for line in result.lines
        ],
        "closing_balance": result.closing_balance,
    }
    if wanted == CSV:
        return Response(statement_csv(body), 200, content_type="text/csv; charset=utf-8")
    return body


def statement_csv(body: dict[str, Any]) -> str:
    """A statement as CSV: a header row, the opening balance (at `from`), one row per
    entry, the closing balance (at `to`); the same values as the JSON."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerow(["", "opening_balance", "", body["opening_balance"], body["from_"] or ""])
    for entry in body["entries"]:
        writer.writerow([entry[column] for column in CSV_COLUMNS])
    writer.writerow(["", "closing_balance", "", body["closing_balance"], body["to"]])
    return out.getvalue()


def _refuse_system_account(user_id: str) -> None:
    if user_id in SYSTEM_ACCOUNTS:
        raise validation_error(
            {
                "user_id": [
                    "System accounts have no statement or balance in time: they are "
                    "sharded by partition, with histories of every player's money; read "
                    "their history (/transactions) and the reconciliation report."
                ]
            },
            f"'{user_id}' is a system account.",
        )


def _no_wallet(user_id: str) -> ApiError:
    return ApiError(404, "user_not_found", f"'{user_id}' has no wallet.")
