"""Client load through a failover, as game servers behave: top-ups from a few threads,
each retried with its own Idempotency-Key on 503 or a broken connection until it is
accepted. Records what clients saw, to check that every accepted command ends applied
exactly once and to measure the window in which writes were refused."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

from tests.e2e.client import Api


@dataclass(frozen=True)
class Accepted:
    tx_id: str
    user: str
    amount: int
    kind: str = "topup"

    @property
    def delta(self) -> int:
        return -self.amount if self.kind == "spend" else self.amount


@dataclass
class Load:
    """Top-ups to `users` players from `threads` threads, `pause` seconds apart each."""

    api: Api
    users: int = 30
    threads: int = 6
    pause: float = 0.05
    accepted: list[Accepted] = field(default_factory=list)
    # Responses other than 200, 202 and 503 (a 500 is a bug): (status, body).
    unexpected: list[tuple[int, str]] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)  # monotonic times of 503s
    broken: list[float] = field(default_factory=list)  # connection errors, timeouts
    accepted_at: list[tuple[float, float]] = field(default_factory=list)  # (sent, answered)
    refused_reads: int = 0  # 503s to the reads that check the outcome, after the load

    def __post_init__(self) -> None:
        self._names = [f"ha-{uuid.uuid4().hex[:10]}" for _ in range(self.users)]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers = [threading.Thread(target=self._run, args=(n,)) for n in range(self.threads)]

    def __enter__(self) -> Load:
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=90)

    def count(self) -> int:
        with self._lock:
            return len(self.accepted)

    def _run(self, seed: int) -> None:
        n = 0
        while not self._stop.is_set():
            user = self._names[(seed * 7 + n) % len(self._names)]
            amount = 1 + n % 5
            n += 1
            self._submit(user, amount)
            time.sleep(self.pause)

    def _submit(self, user: str, amount: int, kind: str = "topup") -> bool:
        """One command until accepted (same key every time), however long that takes:
        a command given up on while its outcome is unknown would be unaccounted for."""
        key = f"ha-{uuid.uuid4().hex}"
        body = {"user_id": user, "asset": "GOLD_COINS", "amount": amount}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            sent = time.monotonic()
            try:
                response = self.api.post(f"/v1/transactions/{kind}", body, key)
            except requests.RequestException:
                with self._lock:
                    self.broken.append(time.monotonic())
                time.sleep(0.25)
                continue
            answered = time.monotonic()
            if response.status_code in (200, 202):
                with self._lock:
                    self.accepted.append(Accepted(response.json()["id"], user, amount, kind))
                    self.accepted_at.append((sent, answered))
                return True
            if response.status_code == 503:
                with self._lock:
                    self.refused.append(answered)
                time.sleep(float(response.headers.get("Retry-After", "1")) / 4)
                continue
            with self._lock:
                self.unexpected.append((response.status_code, response.text[:500]))
            return False
        with self._lock:
            self.unexpected.append((0, f"not accepted in 90 s: {key}"))
        return False

    def refused_window(self, since: float) -> float | None:
        """Seconds from the first write refused after `since` (503 or broken connection)
        to the first write sent after that and accepted; None if none was refused."""
        failures = sorted(t for t in self.refused + self.broken if t >= since)
        if not failures:
            return None
        first = failures[0]
        later = sorted(answered for sent, answered in self.accepted_at if sent >= first)
        return later[0] - first if later else None

    def _read(self, path: str, **params: object) -> dict:
        """A GET as a client makes it: a 503 is retried (and counted), anything else but
        200 fails the test."""
        deadline = time.monotonic() + 20
        while True:
            response = self.api.get(path, **params)
            if response.status_code != 503 or time.monotonic() > deadline:
                assert response.status_code == 200, (path, response.status_code, response.text)
                return response.json()
            self.refused_reads += 1
            time.sleep(0.25)

    def settle_and_check(self, timeout: float = 60) -> dict[str, int]:
        """Every accepted command final and completed, each applied exactly once: each
        player's balance is the exact sum of its accepted top-ups (less its spends), and
        its history holds exactly one transaction (two entries) per accepted command."""
        assert not self.unexpected, f"answers other than 200/202/503: {self.unexpected[:5]}"
        ids = [a.tx_id for a in self.accepted]
        assert len(set(ids)) == len(ids), "one transaction id accepted twice"
        with ThreadPoolExecutor(max_workers=8) as pool:
            finals = list(pool.map(lambda tx: self.api.final(tx, timeout=timeout), ids))
        assert Counter(f["status"] for f in finals) == {"completed": len(ids)}
        expected: Counter[str] = Counter()
        commands: Counter[str] = Counter()
        for a in self.accepted:
            expected[a.user] += a.delta
            commands[a.user] += 1
        applied = 0
        for user, total in expected.items():
            wallet = self._read(f"/v1/wallets/{user}")
            balance = next(b["balance"] for b in wallet["balances"] if b["asset"] == "GOLD_COINS")
            assert balance == total, user
            history = self._read(f"/v1/wallets/{user}/transactions", limit=200)["items"]
            assert len(history) == commands[user], user
            assert all(len(t["entries"]) == 2 for t in history)
            applied += len(history)
        report = self._read("/v1/admin/reconciliation")
        assert report["ok"] is True, report
        return {"accepted": len(ids), "applied": applied}


@dataclass
class PairLoad(Load):
    """Each thread plays its own players in turn: a top-up, then at once a spend of the
    same amount, submitted one after the other (no waiting for the first to apply).
    Only in acceptance order does every spend find its funds, so `settle_and_check`
    (every command completed, every balance back to 0) proves per-wallet order."""

    def _run(self, seed: int) -> None:
        mine = self._names[seed :: self.threads] or self._names
        n = 0
        while not self._stop.is_set():
            user = mine[n % len(mine)]
            amount = 1 + n % 5
            n += 1
            if self._submit(user, amount, "topup"):
                self._submit(user, amount, "spend")
            time.sleep(self.pause)

    def spends(self) -> int:
        with self._lock:
            return sum(1 for a in self.accepted if a.kind == "spend")
