"""Ledgers: isolated books in one service (a game title, or one of its environments).

A ledger owns its assets, wallets, system accounts, transactions, holds, clients and
callbacks; every row of those carries its `ledger_id`, and every query that reads or
locks them names it. The ledger `default` (id 1) always exists (migration 0005).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, text

import resources
from db.engine import connect
from ledger import DEFAULT_LEDGER_ID

DEFAULT_LEDGER_CODE = "default"


@dataclass(frozen=True)
class Ledger:
    id: int
    code: str
    name: str
    created_at: datetime


class LedgerExists(Exception):
    pass


def create_ledger(conn: Connection, code: str, name: str) -> Ledger:
    """Add a ledger; raises LedgerExists when the code is taken. It starts empty."""
    row = conn.execute(
        text(
            "INSERT INTO ledgers (code, name) VALUES (:code, :name) "
            "ON CONFLICT (code) DO NOTHING RETURNING id, code, name, created_at"
        ),
        {"code": code, "name": name},
    ).first()
    if row is None:
        raise LedgerExists(code)
    return Ledger(row.id, row.code, row.name, row.created_at)


def all_ledgers(conn: Connection) -> list[Ledger]:
    rows = conn.execute(text("SELECT id, code, name, created_at FROM ledgers ORDER BY id")).all()
    return [Ledger(r.id, r.code, r.name, r.created_at) for r in rows]


@dataclass
class _Known:
    """The ledgers this process has read (a resource of the process: resources.py)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    by_code: dict[str, Ledger] = field(default_factory=dict)
    by_id: dict[int, Ledger] = field(default_factory=dict)


_KNOWN = resources.Resource("db.ledgers.known", _Known)


class LedgerCatalog:
    """Code -> ledger lookups, cached per process: ledgers are few and never change
    (they are not renamed or deleted), so a hit never needs checking."""

    def by_code(self, code: str) -> Ledger | None:
        found = _KNOWN.get().by_code.get(code)
        if found is None:
            self._reload()
            found = _KNOWN.get().by_code.get(code)
        return found

    def _reload(self) -> None:
        with connect() as conn:
            found = all_ledgers(conn)
        known = _KNOWN.get()
        with known.lock:
            known.by_code = {ledger.code: ledger for ledger in found}
            known.by_id = {ledger.id: ledger for ledger in found}

    def code_of(self, ledger_id: int) -> str:
        """The code of a ledger by id (for log lines and metric labels)."""
        found = _KNOWN.get().by_id.get(ledger_id)
        if found is None:
            self._reload()
            found = _KNOWN.get().by_id.get(ledger_id)
        return found.code if found is not None else str(ledger_id)

    def default(self) -> Ledger:
        found = self.by_code(DEFAULT_LEDGER_CODE)
        assert found is not None and found.id == DEFAULT_LEDGER_ID, "migration 0005 not applied"
        return found

    def clear(self) -> None:
        known = _KNOWN.get()
        with known.lock:
            known.by_code, known.by_id = {}, {}


ledgers = LedgerCatalog()
