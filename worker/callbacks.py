"""Deliver one callback attempt: sign, POST, record, and schedule the next if it failed.

At least once: a delivery is claimed with a lease, so a worker that dies mid-attempt
gives it back; receivers dedupe on Wallet-Event-Id, the same on every attempt. Only
hosts the client registered are ever called, and redirects are never followed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import urllib3

from db import callbacks as outbox
from db.clients import client_by_id
from db.engine import connect
from worker.metrics import CALLBACK_FAILURES, CALLBACKS_DELIVERED

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2.0
TOTAL_TIMEOUT = 5.0
# Retry for at least this long after the transaction became final, then give up.
RETRY_FOR_SECONDS = 3600.0
BACKOFF_FIRST = 1.0
BACKOFF_CAP = 600.0
# Longer than an attempt can take: a worker that dies mid-attempt gives the delivery back.
LEASE_SECONDS = 30.0
USER_AGENT = "wallet-service-callbacks/1"

_http = urllib3.PoolManager(
    retries=False,
    timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=TOTAL_TIMEOUT, total=TOTAL_TIMEOUT),
    maxsize=4,
)


def sign(secret: str, timestamp: str, body: str) -> str:
    """Wallet-Signature: v1=<hex HMAC-SHA256 of "{timestamp}.{body}">."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def backoff(attempt: int) -> float:
    """Exponential with full jitter in its upper half: 1 s, 2 s, 4 s, ... capped at 10 min."""
    ceiling = min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def deliver(delivery_id: uuid.UUID) -> str:
    """One attempt at a due delivery: 'delivered', 'retry', 'failed' or 'skipped'."""
    with connect() as conn:
        delivery = outbox.claim(conn, delivery_id, LEASE_SECONDS)
        client = client_by_id(conn, delivery.client_id) if delivery else None
    if delivery is None or client is None:
        return "skipped"
    if not client.allows_callback(delivery.url):
        _finish(
            delivery, None, "the URL is not allowed by the client's callback_hosts", 0, final=True
        )
        return "failed"
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Wallet-Event-Id": str(delivery.id),
        "Wallet-Timestamp": timestamp,
        "Wallet-Signature": sign(client.webhook_secret, timestamp, delivery.payload),
    }
    started = time.monotonic()
    status, error = _post(delivery.url, delivery.payload, headers)
    elapsed_ms = int((time.monotonic() - started) * 1000)
    if status is not None and 200 <= status < 300:
        _finish(delivery, status, None, elapsed_ms, delivered=True)
        return "delivered"
    if error is None:
        error = f"HTTP {status}"
    age = (datetime.now(UTC) - delivery.created_at).total_seconds()
    final = age >= RETRY_FOR_SECONDS
    _finish(delivery, status, error, elapsed_ms, final=final)
    return "failed" if final else "retry"


def _post(url: str, body: str, headers: dict[str, str]) -> tuple[int | None, str | None]:
    try:
        response = _http.request(
            "POST", url, body=body.encode(), headers=headers, redirect=False, preload_content=False
        )
    except urllib3.exceptions.HTTPError as error:
        return None, f"{type(error).__name__}: {error}"[:500]
    try:
        response.read(4096)  # a receiver's answer is not ours to keep
    except urllib3.exceptions.HTTPError:
        pass
    finally:
        response.release_conn()
    return response.status, None


def _finish(
    delivery: Any,
    status: int | None,
    error: str | None,
    elapsed_ms: int,
    *,
    delivered: bool = False,
    final: bool = False,
) -> None:
    retry = None if delivered or final else backoff(delivery.attempts)
    outcome = "delivered" if delivered else "failed" if final else "pending"
    with connect() as conn:
        outbox.record_attempt(
            conn,
            delivery.id,
            status_code=status,
            error=error,
            duration_ms=elapsed_ms,
            outcome=outcome,
            retry_in_seconds=retry,
        )
    if delivered:
        CALLBACKS_DELIVERED.inc()
    else:
        CALLBACK_FAILURES.inc()
        log.info("callback %s attempt %s: %s", delivery.id, delivery.attempts, error)
