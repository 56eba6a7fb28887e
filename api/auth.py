"""Bearer API keys with scopes. Keys are stored hashed and compared in constant time."""

from __future__ import annotations

import functools
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, overload

from flask import g, request

import resources
import settings
from api.errors import ApiError
from db.clients import (
    BOOTSTRAP_CLIENT_ID,
    SCOPES,
    Client,
    client_by_id,
    client_by_key_hash,
    hash_key,
)
from db.engine import connect
from db.ledgers import ledgers

F = TypeVar("F", bound=Callable[..., Any])
CACHE_SECONDS = 30.0
# An unknown key is remembered as unknown for a few seconds, so that a flood of bad
# keys costs no database query each. Keys are random: a key created meanwhile cannot
# have been tried before it existed, so this never refuses a valid key.
UNKNOWN_CACHE_SECONDS = 5.0
# Bounded: a client inventing a new key per request must not grow memory without end.
UNKNOWN_CACHE_ENTRIES = 10_000


@dataclass
class _Known:
    """Clients by key hash, and key hashes known to be unknown (a resource of the
    process: resources.py)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    clients: dict[str, tuple[Client, float]] = field(default_factory=dict)
    unknown: dict[str, float] = field(default_factory=dict)


_KNOWN = resources.Resource("api.auth.known", _Known)


def require(scope: str) -> Callable[[F], F]:
    """Authenticate the caller and check one scope: 401 without a valid key, 403 without scope."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            client = current_client()
            if scope not in client.scopes:
                raise ApiError(403, "forbidden", f"This key lacks the '{scope}' scope.")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


LEDGER_HEADER = "Wallet-Ledger"


def current_client() -> Client:
    """The caller, acting in the ledger of this request (see `acting_in`)."""
    client: Client | None = g.get("client")
    if client is None:
        client = authenticate(request.headers.get("Authorization", ""))
        client = acting_in(client, request.headers.get(LEDGER_HEADER))
        g.client = client
    return client


def acting_in(client: Client, ledger_code: str | None) -> Client:
    """The client as it acts in the ledger a request names in `Wallet-Ledger`.

    A client acts in its own ledger only: naming another is 403 (an unknown one too, so
    that the answer tells nothing about which ledgers exist). The bootstrap key acts in
    `default`, or in the ledger it names (404 ledger_not_found if there is none).
    """
    if not ledger_code:
        return client
    ledger = ledgers.by_code(ledger_code)
    if client.id == BOOTSTRAP_CLIENT_ID:
        if ledger is None:
            raise ApiError(404, "ledger_not_found", f"There is no ledger '{ledger_code}'.")
        return replace(client, ledger_id=ledger.id)
    if ledger is None or ledger.id != client.ledger_id:
        raise ApiError(403, "forbidden", "This key acts in its own ledger only.")
    return client


def require_bootstrap() -> Client:
    """Only WALLET_ADMIN_KEY manages ledgers (and places clients in other ledgers)."""
    client = current_client()
    if client.id != BOOTSTRAP_CLIENT_ID:
        raise ApiError(403, "forbidden", "Only the bootstrap key manages ledgers.")
    return client


def authenticate(authorization: str) -> Client:
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise ApiError(
            401,
            "unauthorized",
            "Send an API key as 'Authorization: Bearer <key>'.",
            headers={"WWW-Authenticate": 'Bearer realm="wallet"'},
        )
    admin_key = settings.load().admin_key
    if admin_key and hmac.compare_digest(key.encode(), admin_key.encode()):
        return _cached("bootstrap", lambda: _bootstrap())
    digest = hash_key(key)
    client = None if _known_unknown(digest) else _cached(digest, lambda: _by_hash(digest))
    if client is None:
        _remember_unknown(digest)
        raise ApiError(
            401,
            "unauthorized",
            "The API key is not valid.",
            headers={"WWW-Authenticate": 'Bearer realm="wallet", error="invalid_token"'},
        )
    return client


@overload
def _cached(key: str, load: Callable[[], Client]) -> Client: ...
@overload
def _cached(key: str, load: Callable[[], Client | None]) -> Client | None: ...
def _cached(key: str, load: Callable[[], Client | None]) -> Client | None:
    """Clients change rarely; a short cache keeps authentication off the database."""
    now = time.monotonic()
    known = _KNOWN.get()
    hit = known.clients.get(key)
    if hit is not None and hit[1] > now:
        return hit[0]
    client = load()
    if client is not None:
        with known.lock:
            known.clients[key] = (client, now + CACHE_SECONDS)
    return client


def _known_unknown(key_hash: str) -> bool:
    until = _KNOWN.get().unknown.get(key_hash)
    return until is not None and until > time.monotonic()


def _remember_unknown(key_hash: str) -> None:
    known = _KNOWN.get()
    with known.lock:
        if len(known.unknown) >= UNKNOWN_CACHE_ENTRIES:
            known.unknown.clear()
        known.unknown[key_hash] = time.monotonic() + UNKNOWN_CACHE_SECONDS


def _by_hash(key_hash: str) -> Client | None:
    with connect() as conn:
        return client_by_key_hash(conn, key_hash)


def _bootstrap() -> Client:
    with connect() as conn:
        client = client_by_id(conn, BOOTSTRAP_CLIENT_ID)
    if client is None:
        raise ApiError(
            503, "unavailable", "The service is not seeded yet.", headers={"Retry-After": "1"}
        )
    # WALLET_ADMIN_KEY has every scope, whatever the row says.
    return replace(client, scopes=frozenset(SCOPES))


def clear_cache() -> None:
    known = _KNOWN.get()
    with known.lock:
        known.clients.clear()
        known.unknown.clear()
