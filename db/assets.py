"""The asset catalogue, cached per process: assets are few and almost never change."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy import Connection, text

import resources
from db.engine import connect

SEEDED_ASSETS = (
    ("GOLD_COINS", "Gold Coins"),
    ("DIAMONDS", "Diamonds"),
    ("LOYALTY_POINTS", "Loyalty Points"),
)


@dataclass(frozen=True)
class Asset:
    """A currency of one ledger: the same code in two ledgers is two assets."""

    id: int
    ledger_id: int
    code: str
    name: str


class AssetExists(Exception):
    pass


@dataclass
class _Known:
    """The assets this process has read (a resource of the process: resources.py)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    by_code: dict[tuple[int, str], Asset] = field(default_factory=dict)
    by_id: dict[int, Asset] = field(default_factory=dict)


_KNOWN = resources.Resource("db.assets.known", _Known)


class AssetCatalog:
    """(ledger, code) <-> id lookups that reload from the database on a miss."""

    def by_code(self, ledger_id: int, code: str) -> Asset | None:
        asset = _KNOWN.get().by_code.get((ledger_id, code))
        if asset is None:
            self.reload()
            asset = _KNOWN.get().by_code.get((ledger_id, code))
        return asset

    def by_id(self, asset_id: int) -> Asset:
        asset = _KNOWN.get().by_id.get(asset_id)
        if asset is None:
            self.reload()
            asset = _KNOWN.get().by_id[asset_id]
        return asset

    def all(self, ledger_id: int) -> list[Asset]:
        """The ledger's assets, by code."""
        self.reload()
        return sorted(
            (a for a in _KNOWN.get().by_code.values() if a.ledger_id == ledger_id),
            key=lambda a: a.code,
        )

    def reload(self) -> None:
        with connect() as conn:
            rows = conn.execute(text("SELECT id, ledger_id, code, name FROM assets")).all()
        assets = [Asset(r.id, r.ledger_id, r.code, r.name) for r in rows]
        known = _KNOWN.get()
        with known.lock:
            known.by_code = {(a.ledger_id, a.code): a for a in assets}
            known.by_id = {a.id: a for a in assets}

    def clear(self) -> None:
        known = _KNOWN.get()
        with known.lock:
            known.by_code, known.by_id = {}, {}


catalog = AssetCatalog()


def create_asset(
    conn: Connection,
    ledger_id: int,
    code: str,
    name: str,
    max_balance: int | None = None,
    spend_limit_24h: int | None = None,
    credit_lifetime: int | None = None,
) -> Asset:
    """Add an asset to a ledger, with its optional controls (db.controls); raises
    AssetExists when the ledger has the code."""
    row = conn.execute(
        text(
            "INSERT INTO assets (ledger_id, code, name, max_balance, spend_limit_24h, "
            "credit_lifetime_s) VALUES (:ledger, :code, :name, :cap, :limit, :lifetime) "
            "ON CONFLICT (ledger_id, code) DO NOTHING RETURNING id, ledger_id, code, name"
        ),
        {
            "ledger": ledger_id,
            "code": code,
            "name": name,
            "cap": max_balance,
            "limit": spend_limit_24h,
            "lifetime": credit_lifetime,
        },
    ).first()
    if row is None:
        raise AssetExists(code)
    return Asset(row.id, row.ledger_id, row.code, row.name)
