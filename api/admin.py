"""/v1/admin: API clients and the reconciliation report (scope admin)."""

from __future__ import annotations

from typing import Any

from api.auth import require
from api.blueprint import Blueprint
from api.openapi import CLIENT_EXAMPLE
from api.schemas import ClientCreatedSchema, ClientRequestSchema, ReconciliationSchema
from db.clients import create_client
from db.engine import connect
from db.reconciliation import reconcile

blp = Blueprint("admin", __name__, url_prefix="/v1/admin", description="Operators.")


@blp.route("/clients", methods=["POST"])
@require("admin")
@blp.arguments(ClientRequestSchema, example=CLIENT_EXAMPLE)
@blp.response(201, ClientCreatedSchema)
@blp.secured(422)
def add_client(body: dict[str, Any]) -> Any:
    """Create an API client; its key is shown once, in this response"""
    with connect() as conn:
        created = create_client(
            conn, body["name"], sorted(set(body["scopes"])), body["callback_hosts"]
        )
    client = created.client
    return {
        "id": str(client.id),
        "name": client.name,
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
    """Cached balances against the ledger's entries, per asset"""
    return reconcile()
