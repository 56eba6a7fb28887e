"""API clients: who may call the service, with which scopes, and their webhook secret."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, Row, text

# The bootstrap client: the one that WALLET_ADMIN_KEY authenticates. Its row exists so
# that its commands have an owner for idempotency like any other client's.
BOOTSTRAP_CLIENT_ID = uuid.UUID("00000000-0000-0000-0000-000000000001")
SCOPES = ("submit", "read", "admin")


@dataclass(frozen=True)
class Client:
    id: uuid.UUID
    name: str
    scopes: frozenset[str]
    webhook_secret: str
    callback_hosts: tuple[str, ...]

    def allows_callback(self, url: str) -> bool:
        """An http(s) URL without credentials whose host, or host:port, the client
        registered. The service calls no other address, ever."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return False
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host or parts.username or parts.password:
            return False
        allowed = {h.lower() for h in self.callback_hosts}
        return host in allowed or (port is not None and f"{host}:{port}" in allowed)


@dataclass(frozen=True)
class NewClient:
    client: Client
    api_key: str  # shown once, never stored


def hash_key(api_key: str) -> str:
    """Keys are 256-bit random strings, so one SHA-256 is enough (no salt or KDF needed)."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def create_client(
    conn: Connection, name: str, scopes: list[str], callback_hosts: list[str]
) -> NewClient:
    api_key = "wk_" + secrets.token_urlsafe(32)
    client = Client(
        id=uuid.uuid4(),
        name=name,
        scopes=frozenset(scopes),
        webhook_secret="whsec_" + secrets.token_urlsafe(32),
        callback_hosts=tuple(callback_hosts),
    )
    conn.execute(
        text(
            "INSERT INTO api_clients (id, name, scopes, key_hash, webhook_secret, callback_hosts) "
            "VALUES (:id, :name, :scopes, :key_hash, :secret, :hosts)"
        ),
        {
            "id": client.id,
            "name": name,
            "scopes": sorted(client.scopes),
            "key_hash": hash_key(api_key),
            "secret": client.webhook_secret,
            "hosts": list(callback_hosts),
        },
    )
    return NewClient(client, api_key)


def client_by_key_hash(conn: Connection, key_hash: str) -> Client | None:
    row = conn.execute(
        text(
            "SELECT id, name, scopes, webhook_secret, callback_hosts FROM api_clients "
            "WHERE key_hash = :h"
        ),
        {"h": key_hash},
    ).first()
    return _client(row) if row else None


def client_by_id(conn: Connection, client_id: uuid.UUID) -> Client | None:
    row = conn.execute(
        text(
            "SELECT id, name, scopes, webhook_secret, callback_hosts FROM api_clients "
            "WHERE id = :id"
        ),
        {"id": client_id},
    ).first()
    return _client(row) if row else None


def ensure_bootstrap_client(conn: Connection) -> None:
    """The row behind WALLET_ADMIN_KEY: every scope, no stored key, no callback hosts."""
    conn.execute(
        text(
            "INSERT INTO api_clients (id, name, scopes, key_hash, webhook_secret, callback_hosts) "
            "VALUES (:id, 'bootstrap', :scopes, NULL, :secret, '{}') ON CONFLICT (id) DO NOTHING"
        ),
        {
            "id": BOOTSTRAP_CLIENT_ID,
            "scopes": list(SCOPES),
            "secret": "whsec_" + secrets.token_urlsafe(32),
        },
    )


def _client(row: Row[Any]) -> Client:
    return Client(
        id=row.id,
        name=row.name,
        scopes=frozenset(row.scopes),
        webhook_secret=row.webhook_secret,
        callback_hosts=tuple(row.callback_hosts),
    )
