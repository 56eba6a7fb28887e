"""Helpers for integration tests: submit through the intake, drain from threads."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from sqlalchemy import text

from api import intake
from db import reads
from db.clients import BOOTSTRAP_CLIENT_ID, Client, client_by_id
from db.engine import connect
from ledger import DEFAULT_LEDGER_ID, CommandType, partition_of
from tests.support import unique
from worker.drain import drain


def bootstrap() -> Client:
    with connect() as conn:
        client = client_by_id(conn, BOOTSTRAP_CLIENT_ID)
    assert client is not None
    return client


def submit(kind: CommandType, key: str | None = None, **fields: Any) -> dict[str, Any]:
    """Accept a command through the same intake the API uses; returns its resource."""
    submission = intake.Submission(kind, key or unique("key"), fields)
    return intake.submit(bootstrap(), submission).resource


def drain_all(partitions: int = 8) -> None:
    """Apply everything pending, as the workers would: pass over every partition until a
    whole pass applies nothing (a command waiting on another partition is applied on a
    later pass, where a worker would be rung)."""
    while True:
        progressed = False
        for partition in range(partitions):
            while True:
                result = drain(partition)
                progressed |= bool(result.finished or result.expired)
                if not result.more:
                    break
        if not progressed:
            return


def transaction(tx_id: str) -> dict[str, Any]:
    import uuid

    with connect() as conn:
        found = reads.transaction(conn, DEFAULT_LEDGER_ID, uuid.UUID(tx_id))
    assert found is not None
    return found


def statuses(ids: list[str]) -> Counter[tuple[str, str | None]]:
    with connect() as conn:
        rows = conn.execute(
            text(
                "SELECT status, error_code FROM transactions WHERE id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"ids": ids},
        ).all()
    return Counter((r.status, r.error_code) for r in rows)


def wallet(user: str, asset: str = "GOLD_COINS") -> dict[str, Any]:
    with connect() as conn:
        return next(b for b in reads.wallet(conn, DEFAULT_LEDGER_ID, user) if b["asset"] == asset)


def balance(user: str, asset: str = "GOLD_COINS") -> int:
    return int(wallet(user, asset)["balance"])


def users_in_distinct_partitions(count: int, partitions: int = 8) -> list[str]:
    found: dict[int, str] = {}
    while len(found) < count:
        user = unique()
        found.setdefault(partition_of(user, partitions), user)
    return list(found.values())


def users_in(partition: int, count: int, partitions: int = 8) -> list[str]:
    """`count` new players whose wallets live in `partition`."""
    found: list[str] = []
    while len(found) < count:
        user = unique()
        if partition_of(user, partitions) == partition:
            found.append(user)
    return found


class Drainers:
    """Threads draining partitions over and over, as competing workers would.

    Any exception a drain raises (a deadlock included: PostgreSQL would abort one side)
    is kept and fails the test on exit; retries cannot hide it.
    """

    def __init__(self, partitions: set[int], threads: int = 3) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads = [
            threading.Thread(target=self._run, args=(sorted(partitions), i)) for i in range(threads)
        ]

    def _run(self, partitions: list[int], offset: int) -> None:
        turn = partitions[offset % len(partitions) :] + partitions[: offset % len(partitions)]
        while not self.stop.is_set():
            for partition in turn:
                try:
                    drain(partition, batch_size=50)
                except BaseException as error:  # the test fails on exit with this
                    self.errors.append(error)

    def __enter__(self) -> Drainers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()
        drain_all()
        assert self.errors == [], self.errors
