"""/v1/wallets: balances and history of a player (or of a system account)."""

from __future__ import annotations

from typing import Any

from api import cursors, intake
from api.assets import asset_filter
from api.auth import current_client, require
from api.blueprint import Blueprint
from api.errors import ApiError
from api.observability import request_id
from api.openapi import FREEZE_EXAMPLE, UNFREEZE_EXAMPLE, header_refs
from api.schemas import (
    ACCOUNT_PATTERN,
    USER_ID_PATTERN,
    FreezeSchema,
    HistoryPageSchema,
    HistoryQuerySchema,
    TransactionSchema,
    UnfreezeSchema,
    WalletSchema,
)
from api.transactions import IDEMPOTENCY_HEADER, respond, with_idempotency_key
from db import controls, reads
from db.engine import autocommit
from ledger import SYSTEM_ACCOUNTS, CommandType, is_valid_user_id

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
@blp.response(200, WalletSchema)
@blp.secured(404)
def get_wallet(user_id: str) -> Any:
    """A wallet's balances per asset: balance, held, available"""
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
    @blp.response(
        202,
        TransactionSchema,
        description="Accepted: the pending transaction.",
        headers=header_refs("Location"),
    )
    @blp.alt_response(
        200,
        schema=TransactionSchema,
        description="Replay of the same key and body: the transaction in its current state.",
        headers=header_refs("Location", "Idempotent-Replayed"),
    )
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


def _no_wallet(user_id: str) -> ApiError:
    return ApiError(404, "user_not_found", f"'{user_id}' has no wallet.")
