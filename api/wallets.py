"""/v1/wallets: balances and history of a player (or of a system account)."""

from __future__ import annotations

from typing import Any

from api import cursors
from api.assets import asset_filter
from api.auth import current_client, require
from api.blueprint import Blueprint
from api.errors import ApiError
from api.schemas import ACCOUNT_PATTERN, HistoryPageSchema, HistoryQuerySchema, WalletSchema
from db import reads
from db.engine import autocommit
from ledger import SYSTEM_ACCOUNTS, is_valid_user_id

blp = Blueprint("wallets", __name__, url_prefix="/v1/wallets", description="Balances and history.")

ACCOUNT = {
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
    if is_valid_user_id(user_id) or user_id in SYSTEM_ACCOUNTS:
        with autocommit() as conn:
            balances = reads.wallet(conn, current_client().ledger_id, user_id)
    if not balances:
        raise _no_wallet(user_id)
    return {"user_id": user_id, "balances": balances}


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
