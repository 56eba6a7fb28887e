"""The guarantees, against the real stack: concurrency, order, exactly once, crashes.

Loads come from real threads over HTTP. Crashes are real: a worker process killed with
SIGKILL, Redis emptied with FLUSHALL, the database link cut.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from tests.support import unique


def test_1000_concurrent_spends_of_1_against_a_balance_of_100(api):
    user = unique()
    api.final(api.submit("topup", {"user_id": user, "asset": "GOLD_COINS", "amount": 100})["id"])
    with ThreadPoolExecutor(max_workers=48) as pool:
        spends = list(
            pool.map(
                lambda _: api.submit(
                    "spend", {"user_id": user, "asset": "GOLD_COINS", "amount": 1}
                ),
                range(1000),
            )
        )
        finals = list(pool.map(lambda s: api.final(s["id"]), spends))
    outcome = Counter((f["status"], (f["error"] or {}).get("code")) for f in finals)
    assert outcome == {("completed", None): 100, ("rejected", "insufficient_funds"): 900}
    assert api.balance(user) == 0


def test_a_wallets_commands_apply_in_the_order_they_were_accepted(api):
    """40 players at once, each: top up 10 then spend 10, back to back, five times."""
    users = [unique() for _ in range(40)]

    def play(user):
        spends = []
        for _ in range(5):
            api.submit("topup", {"user_id": user, "asset": "GOLD_COINS", "amount": 10})
            spends.append(
                api.submit("spend", {"user_id": user, "asset": "GOLD_COINS", "amount": 10})
            )
        return spends

    with ThreadPoolExecutor(max_workers=40) as pool:
        spends = [s for played in pool.map(play, users) for s in played]
        finals = list(pool.map(lambda s: api.final(s["id"]), spends))
    assert Counter(f["status"] for f in finals) == {"completed": 200}
    assert all(api.balance(u) == 0 for u in users)


def test_concurrent_duplicates_make_one_transaction_per_key(api):
    """50 idempotency keys, each submitted 4 times at once."""
    user = unique()
    keys = [f"dup-{uuid.uuid4().hex}" for _ in range(50)]
    body = {"user_id": user, "asset": "GOLD_COINS", "amount": 2}
    with ThreadPoolExecutor(max_workers=64) as pool:
        responses = list(
            pool.map(
                lambda k: api.post("/v1/transactions/topup", body, k),
                [k for k in keys for _ in range(4)],
            )
        )
    assert Counter(r.status_code for r in responses) == {202: 50, 200: 150}
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 50
    for tx_id in ids:
        assert api.final(tx_id)["status"] == "completed"
    assert api.balance(user) == 100
    history = api.get(f"/v1/wallets/{user}/transactions", limit=200).json()["items"]
    assert len(history) == 50


class Load:
    """Top-ups to many players from several threads until stopped; records every 202."""

    def __init__(self, api, users: int = 60, threads: int = 12) -> None:
        self.api = api
        self.users = [unique("load") for _ in range(users)]
        self.accepted: list[tuple[str, str, int]] = []  # (tx id, user, amount)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, seed: int) -> None:
        n = 0
        while not self._stop.is_set():
            user = self.users[(seed * 7 + n) % len(self.users)]
            amount = 1 + (n % 5)
            n += 1
            accepted = self.api.submit(
                "topup", {"user_id": user, "asset": "GOLD_COINS", "amount": amount}
            )
            with self._lock:
                self.accepted.append((accepted["id"], user, amount))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def settle_and_check(self) -> None:
        """Every 202 ends final, each applied exactly once: balances are the exact sums."""
        with ThreadPoolExecutor(max_workers=32) as pool:
            finals = list(pool.map(lambda a: self.api.final(a[0], timeout=120), self.accepted))
        assert Counter(f["status"] for f in finals) == {"completed": len(self.accepted)}
        expected = Counter()
        for _, user, amount in self.accepted:
            expected[user] += amount
        for user, total in expected.items():
            assert self.api.balance(user) == total, user
            history = self.api.get(f"/v1/wallets/{user}/transactions", limit=200).json()["items"]
            assert all(len(t["entries"]) == 2 for t in history)


def wait_for(condition, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_worker_killed_with_sigkill_mid_load_loses_and_repeats_nothing(stack, api):
    """Kill partition workers while they drain, then stop submitting: nothing else rings
    those partitions, so the restarted workers (or the sweeper) must finish the work."""
    with Load(api) as load:
        wait_for(lambda: len(load.accepted) >= 400, what="load to start")
        victims = stack.workers()
        assert victims, "no partition worker found"
        for victim in victims[:2]:
            os.kill(victim.pid, signal.SIGKILL)
    wait_for(lambda: len(stack.workers()) >= len(victims), what="killed workers to come back")
    load.settle_and_check()


def test_redis_flushed_mid_load_loses_nothing(stack, api):
    with Load(api) as load:
        wait_for(lambda: len(load.accepted) >= 300, what="load to start")
        stack.redis().flushall()
        wait_for(lambda: len(load.accepted) >= 900, timeout=60, what="load to continue")
    stack.redis().flushall()
    load.settle_and_check()


def test_commands_whose_doorbells_were_flushed_are_found_by_the_sweeper(stack, api):
    """Workers frozen, commands accepted (their doorbells queued in Redis), Redis
    flushed, workers thawed: no message is left that could start a drain. Only the
    sweeper, reading PostgreSQL, can bring these commands to a final status."""
    frozen = stack.workers()
    for worker in frozen:
        worker.suspend()
    try:
        accepted = [
            api.submit("topup", {"user_id": unique("flushed"), "asset": "GOLD_COINS", "amount": 5})
            for _ in range(40)
        ]
        assert stack.redis().dbsize() > 0  # the doorbells are there, waiting
        stack.redis().flushall()
    finally:
        for worker in frozen:
            worker.resume()
    finals = [api.final(a["id"], timeout=30) for a in accepted]
    assert {f["status"] for f in finals} == {"completed"}


def test_database_down_mid_load_answers_503_and_loses_nothing(stack, api):
    """Cut the database link under load: intake says 503 (Retry-After), never 500;
    clients retry with the same key; every accepted command ends applied once."""
    with Load(api) as load:
        wait_for(lambda: len(load.accepted) >= 200, what="load to start")
        stack.proxy.cut()
        try:
            response = api.post(
                "/v1/transactions/topup",
                {"user_id": unique(), "asset": "GOLD_COINS", "amount": 1},
                f"down-{uuid.uuid4().hex}",
            )
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"]
            assert response.headers["Content-Type"] == "application/problem+json"
            assert response.json()["code"] == "unavailable"
            assert api.get("/readyz").status_code == 503
            time.sleep(2)
        finally:
            stack.proxy.restore()
        count = len(load.accepted)
        wait_for(lambda: len(load.accepted) >= count + 300, timeout=60, what="load to resume")
    load.settle_and_check()
