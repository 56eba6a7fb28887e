"""/v1/assets: the currencies the ledger knows."""

from __future__ import annotations

from typing import Any

from api.auth import current_client, require
from api.blueprint import Blueprint
from api.errors import ApiError, unknown_asset
from api.openapi import ASSET_EXAMPLE, header_refs
from api.schemas import AssetListSchema, AssetSchema
from db.assets import AssetExists, catalog, create_asset
from db.engine import connect

blp = Blueprint("assets", __name__, url_prefix="/v1/assets", description="Currencies.")


@blp.route("", methods=["GET"])
@require("read")
@blp.response(200, AssetListSchema)
@blp.secured()
def list_assets() -> Any:
    """Every asset of the caller's ledger, by code"""
    ledger_id = current_client().ledger_id
    return {"items": [{"code": a.code, "name": a.name} for a in catalog.all(ledger_id)]}


@blp.route("", methods=["POST"])
@require("admin")
@blp.arguments(AssetSchema, example=ASSET_EXAMPLE)
@blp.response(201, AssetSchema, headers=header_refs("Location"))
@blp.secured(409, 422)
def add_asset(body: dict[str, Any]) -> Any:
    """Add an asset (409 if the code exists)"""
    try:
        with connect() as conn:
            asset = create_asset(conn, current_client().ledger_id, body["code"], body["name"])
    except AssetExists:
        raise ApiError(409, "asset_exists", f"Asset {body['code']} already exists.") from None
    catalog.clear()
    return {"code": asset.code, "name": asset.name}, 201, {"Location": "/v1/assets"}


def asset_filter(ledger_id: int, code: str | None) -> int | None:
    """The id of a listing's `asset` filter in the caller's ledger (None: no filter), or
    422 unknown_asset."""
    if code is None:
        return None
    found = catalog.by_code(ledger_id, code)
    if found is None:
        raise unknown_asset(code)
    return found.id
