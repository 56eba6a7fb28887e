"""/v1/admin: ledgers, API clients and the reconciliation report (scope admin)."""

from __future__ import annotations

from typing import Any

from api.auth import current_client, require, require_bootstrap
from api.blueprint import Blueprint
from api.errors import ApiError
from api.openapi import CLIENT_EXAMPLE, LEDGER_EXAMPLE
from api.schemas import (
    ClientCreatedSchema,
    ClientRequestSchema,
    LedgerListSchema,
    LedgerRequestSchema,
    LedgerSchema,
    ReconciliationSchema,
)
from db.clients import BOOTSTRAP_CLIENT_ID, create_client
from db.engine import connect
from db.ledgers import Ledger, LedgerExists, all_ledgers, create_ledger, ledgers
from db.reads import iso
from db.reconciliation import reconcile

blp = Blueprint("admin", __name__, url_prefix="/v1/admin", description="Operators.")


@blp.route("/ledgers", methods=["POST"])
@require("admin")
@blp.arguments(LedgerRequestSchema, example=LEDGER_EXAMPLE)
@blp.response(201, LedgerSchema)
@blp.secured(409, 422)
def add_ledger(body: dict[str, Any]) -> Any:
    """Create a ledger, an isolated book with no assets yet (the bootstrap key only)"""
    require_bootstrap()
    try:
        with connect() as conn:
            ledger = create_ledger(conn, body["code"], body["name"])
    except LedgerExists:
        raise ApiError(409, "ledger_exists", f"Ledger {body['code']} already exists.") from None
    return _ledger(ledger), 201, {"Location": "/v1/admin/ledgers"}


@blp.route("/ledgers", methods=["GET"])
@require("admin")
@blp.response(200, LedgerListSchema)
@blp.secured()
def list_ledgers() -> Any:
    """Every ledger (the bootstrap key only)"""
    require_bootstrap()
    with connect() as conn:
        return {"items": [_ledger(ledger) for ledger in all_ledgers(conn)]}


@blp.route("/clients", methods=["POST"])
@require("admin")
@blp.arguments(ClientRequestSchema, example=CLIENT_EXAMPLE)
@blp.response(201, ClientCreatedSchema)
@blp.secured(404, 422)
def add_client(body: dict[str, Any]) -> Any:
    """Create an API client in a ledger; its key is shown once, in this response"""
    caller = current_client()
    ledger = _target_ledger(caller.id == BOOTSTRAP_CLIENT_ID, caller.ledger_id, body.get("ledger"))
    with connect() as conn:
        created = create_client(
            conn, ledger.id, body["name"], sorted(set(body["scopes"])), body["callback_hosts"]
        )
    client = created.client
    return {
        "id": str(client.id),
        "name": client.name,
        "ledger": ledger.code,
        "scopes": sorted(client.scopes),
        "callback_hosts": list(client.callback_hosts),
        "api_key": created.api_key,
        "webhook_secret": client.webhook_secret,
    }, 201


@blp.route("/reconciliation", methods=["GET"])
@require("admin")
@blp.response(200, ReconciliationSchema)
@blp.secured()
def reconciliation() -> Any:
    """The caller's ledger: cached balances against its entries, per asset"""
    return reconcile(current_client().ledger_id)


def _target_ledger(bootstrap: bool, acting_ledger: int, code: str | None) -> Ledger:
    """The ledger a new client goes to: the caller's own unless it names another, which
    only the bootstrap key may do."""
    if code is None:
        return _by_id(acting_ledger)
    ledger = ledgers.by_code(code)
    if not bootstrap and (ledger is None or ledger.id != acting_ledger):
        raise ApiError(403, "forbidden", "Only the bootstrap key creates clients in other ledgers.")
    if ledger is None:
        raise ApiError(404, "ledger_not_found", f"There is no ledger '{code}'.")
    return ledger


def _by_id(ledger_id: int) -> Ledger:
    with connect() as conn:
        return next(ledger for ledger in all_ledgers(conn) if ledger.id == ledger_id)


def _ledger(ledger: Ledger) -> dict[str, Any]:
    return {"code": ledger.code, "name": ledger.name, "created_at": iso(ledger.created_at)}
