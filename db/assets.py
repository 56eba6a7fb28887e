"""The asset catalogue, cached per process: assets are few and almost never change."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import Connection, text

from db.engine import connect

SEEDED_ASSETS = (
    ("GOLD_COINS", "Gold Coins"),
    ("DIAMONDS", "Diamonds"),
    ("LOYALTY_POINTS", "Loyalty Points"),
)


@dataclass(frozen=True)
class Asset:
    id: int
    code: str
    name: str


class AssetExists(Exception):
    pass


class AssetCatalog:
    """Code <-> id lookups that reload from the database on a miss."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_code: dict[str, Asset] = {}
        self._by_id: dict[int, Asset] = {}

    def by_code(self, code: str) -> Asset | None:
        asset = self._by_code.get(code)
        if asset is None:
            self.reload()
            asset = self._by_code.get(code)
        return asset

    def by_id(self, asset_id: int) -> Asset:
        asset = self._by_id.get(asset_id)
        if asset is None:
            self.reload()
            asset = self._by_id[asset_id]
        return asset

    def all(self) -> list[Asset]:
        self.reload()
        return sorted(self._by_code.values(), key=lambda a: a.code)

    def reload(self) -> None:
        with connect() as conn:
            rows = conn.execute(text("SELECT id, code, name FROM assets")).all()
        assets = [Asset(r.id, r.code, r.name) for r in rows]
        with self._lock:
            self._by_code = {a.code: a for a in assets}
            self._by_id = {a.id: a for a in assets}

    def clear(self) -> None:
        with self._lock:
            self._by_code, self._by_id = {}, {}


catalog = AssetCatalog()


def create_asset(conn: Connection, code: str, name: str) -> Asset:
    """Add an asset; raises AssetExists when the code is taken."""
    row = conn.execute(
        text(
            "INSERT INTO assets (code, name) VALUES (:code, :name) "
            "ON CONFLICT (code) DO NOTHING RETURNING id, code, name"
        ),
        {"code": code, "name": name},
    ).first()
    if row is None:
        raise AssetExists(code)
    return Asset(row.id, row.code, row.name)
