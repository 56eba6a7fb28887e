"""API clients: who may call the service, with which scopes, and their webhook secret."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, Row, text

# The bootstrap client: the one that WALLET_ADMIN_KEY authenticates. Its row exists so
# that its commands have an owner for idempotency like any other client's.
BOOTSTRAP_CLIENT_ID = uuid.UUID("00000000-0000-0000-0000-000000000001")
SCOPES = ("submit", "read", "admin")

# One DNS label (RFC 1123): 1-63 letters, digits or hyphens, no hyphen at either end.
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_PORT = re.compile(r"[0-9]{1,5}")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_callback_host(entry: str) -> tuple[str, int | None]:
    """`host` or `host:port` as (canonical host, port or None); ValueError if malformed.

    The host is a DNS name, an IPv4 address or a bracketed IPv6 address; the canonical
    form is lowercase, and an IPv6 address is compressed in brackets (`[2001:db8::1]`).
    The same grammar reads callback_hosts entries and the authority of a callback_url,
    so what is registered and what is called are compared in one form.
    """
    if entry.startswith("["):
        address, bracket, rest = entry[1:].partition("]")
        if not bracket:
            raise ValueError("An IPv6 address needs its closing bracket.")
        try:
            # Zone ids (fe80::1%eth0) name an interface of this machine, not an address.
            if "%" in address:
                raise ValueError(address)
            host = f"[{ipaddress.IPv6Address(address).compressed}]"
        except ValueError:
            raise ValueError(f"'{address}' is not an IPv6 address.") from None
        if rest and not rest.startswith(":"):
            raise ValueError("Only ':port' may follow an IPv6 address.")
        port_text = rest[1:] if rest else None
    else:
        name, colon, port_text_or_empty = entry.partition(":")
        host = _host_name(name.lower())
        port_text = port_text_or_empty if colon else None
    if port_text is None:
        return host, None
    if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"'{port_text}' is not a port (1-65535).")
    return host, int(port_text)


def callback_host(entry: str) -> str:
    """A callback_hosts entry in its canonical, stored form; ValueError if malformed."""
    host, port = parse_callback_host(entry)
    return host if port is None else f"{host}:{port}"


def _host_name(name: str) -> str:
    """A lowercase DNS name or IPv4 address, as given; ValueError otherwise."""
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"'{name}' is not a host name or IPv4 address.")
    # A name ending in a numeric label is an IPv4 address to URL parsers and resolvers,
    # which also read shorthands like 127.1 or 0x7f.1: only a dotted quad is accepted.
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:
            return str(ipaddress.IPv4Address(name))
        except ValueError:
            raise ValueError(f"'{name}' is not an IPv4 address.") from None
    return name


def _has_blank_or_control(url: str) -> bool:
    """Whitespace or a control character anywhere: parsers disagree on what they mean
    (urlsplit strips some, drops others), so such a URL is never ours to call."""
    return any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in url)


@dataclass(frozen=True)
class Client:
    """A caller of the API, as it acts in one request.

    `ledger_id` is the ledger it acts in: a client's own, always; the bootstrap key
    acts in `default` or in the ledger its request names (api.auth).
    """

    id: uuid.UUID
    name: str
    scopes: frozenset[str]
    webhook_secret: str
    callback_hosts: tuple[str, ...]
    ledger_id: int

    def allows_callback(self, url: str) -> bool:
        """An http(s) URL without credentials, whitespace or control characters whose
        host, or host:port, the client registered. The service calls no other address.

        Checked at intake and again before every delivery. An entry `host` allows any
        port; `host:port` allows that port only, whether the URL spells it or implies
        it: `http://h/` connects to h:80, so a `h:80` entry allows it (and `https://h/`
        needs `h:443`). Entries are matched in canonical form, IPv6 included.
        """
        if _has_blank_or_control(url):
            return False
        try:
            parts = urlsplit(url)
            host, port = parse_callback_host(parts.netloc)  # no '@': credentials refused
        except ValueError:
            return False
        if parts.scheme not in _DEFAULT_PORTS:
            return False
        allowed = set()
        for entry in self.callback_hosts:
            try:
                allowed.add(parse_callback_host(entry))
            except ValueError:
                continue  # a row from before entries were checked: it allows nothing
        effective_port = port if port is not None else _DEFAULT_PORTS[parts.scheme]
        return (host, None) in allowed or (host, effective_port) in allowed


@dataclass(frozen=True)
class NewClient:
    client: Client
    api_key: str  # shown once, never stored


def hash_key(api_key: str) -> str:
    """Keys are 256-bit random strings, so one SHA-256 is enough (no salt or KDF needed)."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def create_client(
    conn: Connection, ledger_id: int, name: str, scopes: list[str], callback_hosts: list[str]
) -> NewClient:
    api_key = "wk_" + secrets.token_urlsafe(32)
    # Stored canonical, once each: what the response shows is what is matched.
    callback_hosts = list(dict.fromkeys(callback_host(h) for h in callback_hosts))
    client = Client(
        id=uuid.uuid4(),
        name=name,
        scopes=frozenset(scopes),
        webhook_secret="whsec_" + secrets.token_urlsafe(32),
        callback_hosts=tuple(callback_hosts),
        ledger_id=ledger_id,
    )
    conn.execute(
        text(
            "INSERT INTO api_clients "
            "(id, ledger_id, name, scopes, key_hash, webhook_secret, callback_hosts) "
            "VALUES (:id, :ledger, :name, :scopes, :key_hash, :secret, :hosts)"
        ),
        {
            "id": client.id,
            "ledger": ledger_id,
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
            "SELECT id, ledger_id, name, scopes, webhook_secret, callback_hosts "
            "FROM api_clients WHERE key_hash = :h"
        ),
        {"h": key_hash},
    ).first()
    return _client(row) if row else None


def client_by_id(conn: Connection, client_id: uuid.UUID) -> Client | None:
    row = conn.execute(
        text(
            "SELECT id, ledger_id, name, scopes, webhook_secret, callback_hosts "
            "FROM api_clients WHERE id = :id"
        ),
        {"id": client_id},
    ).first()
    return _client(row) if row else None


def ensure_bootstrap_client(conn: Connection) -> None:
    """The row behind WALLET_ADMIN_KEY: every scope, no stored key, no callback hosts."""
    conn.execute(
        text(
            "INSERT INTO api_clients "
            "(id, ledger_id, name, scopes, key_hash, webhook_secret, callback_hosts) "
            "VALUES (:id, 1, 'bootstrap', :scopes, NULL, :secret, '{}') "
            "ON CONFLICT (id) DO NOTHING"
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
        ledger_id=row.ledger_id,
    )
