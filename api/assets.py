"""/v1/assets: the currencies the ledger knows."""

from __future__ import annotations

from typing import Any

from api.auth import current_client, require
from api.blueprint import Blueprint
from api.errors import ApiError, unknown_asset
from api.openapi import ASSET_EXAMPLE, ASSET_PATCH_EXAMPLE, header_refs
from api.schemas import AssetListSchema, AssetPatchSchema, AssetSchema
from db import controls
from db.assets import AssetExists, catalog, create_asset
from db.engine import autocommit, connect
from ledger import ASSET_CODE_PATTERN

blp = Blueprint("assets", __name__, url_prefix="/v1/assets", description="Currencies.")


@blp.route("", methods=["GET"])
@require("read")
@blp.response(200, AssetListSchema)
@blp.secured()
def list_assets() -> Any:
    """Every asset of the caller's ledger, by code, with its settings"""
    with autocommit() as conn:
        found = controls.settings_of(conn, current_client().ledger_id)
    return {"items": [_shown(a) for a in found]}


def _shown(asset: controls.AssetSettings, every_setting: bool = False) -> dict[str, Any]:
    """An asset as the API shows it: its code and name, and the settings it has (an
    asset without rules reads `{"code", "name"}`, as it always did). A PATCH answer
    shows every setting, null where there is none, so a cleared one is visible."""
    settings = {
        "max_balance": asset.max_balance,
        "spend_limit_24h": asset.spend_limit_24h,
        "credit_lifetime": asset.credit_lifetime,
    }
    if not every_setting:
        settings = {name: value for name, value in settings.items() if value is not None}
    return {"code": asset.code, "name": asset.name, **settings}


@blp.route("", methods=["POST"])
@require("admin")
@blp.arguments(AssetSchema, example=ASSET_EXAMPLE)
@blp.response(201, AssetSchema, headers=header_refs("Location"))
@blp.secured(409, 422)
def add_asset(body: dict[str, Any]) -> Any:
    """Add an asset (409 if the code exists)"""
    try:
        with connect() as conn:
            asset = create_asset(
                conn,
                current_client().ledger_id,
                body["code"],
                body["name"],
                body.get("max_balance"),
                body.get("spend_limit_24h"),
                body.get("credit_lifetime"),
            )
    except AssetExists:
        raise ApiError(409, "asset_exists", f"Asset {body['code']} already exists.") from None
    catalog.clear()
    shown = controls.AssetSettings(
        asset.code,
        asset.name,
        body.get("max_balance"),
        body.get("spend_limit_24h"),
        body.get("credit_lifetime"),
    )
    return _shown(shown), 201, {"Location": "/v1/assets"}


CODE = {
    "in": "path",
    "name": "code",
    "required": True,
    "description": "The asset's code.",
    "schema": {"type": "string", "pattern": ASSET_CODE_PATTERN},
    # The POST example's asset, not a seeded one: the fuzz sends it for real.
    "example": "STAR_DUST",
}


@blp.route("/<code>", methods=["PATCH"], parameters=[CODE])
@require("admin")
@blp.arguments(AssetPatchSchema, example=ASSET_PATCH_EXAMPLE)
@blp.response(200, AssetSchema)
@blp.secured(404, 422)
def change_asset(body: dict[str, Any], code: str) -> Any:
    """Set, change or clear (null) an asset's settings

    A rule is in force for every command the drain applies after the change commits
    (including commands accepted before it). Removing `credit_lifetime` makes every
    credit of the asset non-expiring.
    """
    with connect() as conn:
        changed = controls.change_settings(conn, current_client().ledger_id, code, body)
    if changed is None:
        raise ApiError(404, "not_found", f"There is no asset '{code}'.")
    return _shown(changed, every_setting=True)


def asset_filter(ledger_id: int, code: str | None) -> int | None:
    """The id of a listing's `asset` filter in the caller's ledger (None: no filter), or
    422 unknown_asset."""
    if code is None:
        return None
    found = catalog.by_code(ledger_id, code)
    if found is None:
        raise unknown_asset(code)
    return found.id
