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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import urllib3
from sqlalchemy import Row

import resources
import settings
from db import callbacks as outbox
from db.clients import client_by_id
from db.engine import connect
from worker.metrics import CALLBACK_DELIVERIES, CALLBACK_FAILURES, CALLBACKS_DELIVERED

if TYPE_CHECKING:
    from worker.app import BoundTask

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2.0
TOTAL_TIMEOUT = 5.0
# Retry for at least settings' callback_retry_for_seconds after the transaction became
# final, then give up. The schedule is configurable so that tests (and staging) can
# watch a delivery fail.
# Longer than an attempt can take: a worker that dies mid-attempt gives the delivery back.
LEASE_SECONDS = 30.0
USER_AGENT = "wallet-service-callbacks/1"

HTTP = resources.Resource(
    "worker.callbacks.http",
    lambda: urllib3.PoolManager(
        retries=False,
        timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=TOTAL_TIMEOUT, total=TOTAL_TIMEOUT),
        maxsize=4,
    ),
    lambda pool, after_fork: None if after_fork else pool.clear(),
)


def sign(secret: str, timestamp: str, body: str) -> str:
    """Wallet-Signature: v1=<hex HMAC-SHA256 of "{timestamp}.{body}">."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def backoff(attempt: int) -> float:
    """Exponential with full jitter in its upper half: 1 s, 2 s, 4 s, ... capped at 10 min."""
    config = settings.load()
    ceiling = min(
        config.callback_backoff_cap_seconds,
        config.callback_backoff_first_seconds * 2 ** (attempt - 1),
    )
    return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class Attempt:
    """How one attempt ended: 'delivered', 'retry', 'failed' (final) or 'skipped' (not
    due, or someone else has it), the seconds until the next attempt, and what failed."""

    outcome: str
    retry_in_seconds: float | None = None
    error: str | None = None


def deliver(delivery_id: uuid.UUID) -> str:
    """One attempt at a due delivery: 'delivered', 'retry', 'failed' or 'skipped'."""
    return deliver_attempt(delivery_id).outcome


def deliver_attempt(delivery_id: uuid.UUID) -> Attempt:
    """One attempt at a due delivery, and when the next one is due if it failed."""
    with connect() as conn:
        delivery = outbox.claim(conn, delivery_id, LEASE_SECONDS)
        client = client_by_id(conn, delivery.client_id) if delivery else None
    if delivery is None or client is None:
        return Attempt("skipped")
    if not client.allows_callback(delivery.url):
        refused = "the URL is not allowed by the client's callback_hosts"
        _finish(delivery, None, refused, 0, final=True)
        return Attempt("failed", error=refused)
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
        return Attempt("delivered")
    if error is None:
        error = f"HTTP {status}"
    age = (datetime.now(UTC) - delivery.created_at).total_seconds()
    final = age >= settings.load().callback_retry_for_seconds
    retry = _finish(delivery, status, error, elapsed_ms, final=final)
    return Attempt("failed" if final else "retry", retry, error)


def _post(url: str, body: str, headers: dict[str, str]) -> tuple[int | None, str | None]:
    try:
        response = HTTP.get().request(
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
    delivery: Row[Any],
    status: int | None,
    error: str | None,
    elapsed_ms: int,
    *,
    delivered: bool = False,
    final: bool = False,
) -> float | None:
    """Record the attempt; the seconds until the next one (None: no retry)."""
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
    CALLBACK_DELIVERIES.labels("delivered" if delivered else "failed" if final else "retry").inc()
    if delivered:
        CALLBACKS_DELIVERED.inc()
    else:
        CALLBACK_FAILURES.inc()
        log.warning(
            "callback attempt failed",
            extra={
                "transaction_id": str(delivery.transaction_id),
                "event_id": str(delivery.id),
                "attempt": delivery.attempts,
                "url": delivery.url,
                "error": error,
                "final": final,
                "retry_in_s": None if retry is None else round(retry, 3),
            },
        )
    return retry


class CallbackFailed(Exception):
    """A delivery failed for good (its retry time ran out, or its host is not allowed)."""


def settle(task: BoundTask, attempt: Attempt) -> str:
    """How a delivery task ends, so that Flower shows what happened: success for a
    delivery (or an attempt that was not due), a retry when the attempt failed and will
    be tried again, a failure when it failed for good."""
    if attempt.outcome == "retry":
        raise task.retry(countdown=attempt.retry_in_seconds, exc=CallbackFailed(attempt.error))
    if attempt.outcome == "failed":
        raise CallbackFailed(attempt.error)
    return attempt.outcome
