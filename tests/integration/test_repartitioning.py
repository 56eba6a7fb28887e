"""Re-partitioning a live system (db.partitioning): pending commands and active holds
move with their wallets, intake computes partitions with the count it reads under the
intake lock, the sweeper follows the new count, and everything still applies in order.

Each test puts the count back to 8 (what the other tests of the run assume).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from db import partitioning
from db.batch import partitions_to_sweep
from db.engine import connect, get_engine
from ledger import CommandType, partition_of
from tests.integration.helpers import balance, drain_all, statuses, submit
from tests.support import unique


@pytest.fixture(autouse=True)
def _back_to_8(rings: list[int]) -> Iterator[None]:
    yield
    drain_all(partitions=16)
    partitioning.repartition(8)
    drain_all()


def pending_rows(users: list[str]) -> list[tuple[str, int, int]]:
    """(user, partition, seq) of the users' pending commands, in seq order."""
    with connect() as conn:
        rows = conn.execute(
            text(
                "SELECT user_id, partition, seq FROM transactions WHERE status = 'pending' "
                "AND user_id = ANY(:users) ORDER BY seq"
            ),
            {"users": users},
        ).all()
    return [(r.user_id, r.partition, r.seq) for r in rows]


def users_that_move(count: int, old: int, new: int) -> list[str]:
    found: list[str] = []
    while len(found) < count:
        user = unique("rp")
        if partition_of(user, old) != partition_of(user, new):
            found.append(user)
    return found


def test_pending_commands_move_with_their_wallets_and_still_apply_in_order():
    """Top-up then spend for each player, left pending; 8 -> 5; each wallet's commands
    are in its new partition, in their old order, and every spend completes."""
    users = users_that_move(30, 8, 5)
    spends = []
    for user in users:
        for _ in range(3):
            submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=7)
            spends.append(submit(CommandType.SPEND, user_id=user, asset="GOLD_COINS", amount=7))
    before = pending_rows(users)
    assert {p for u, p, _ in before} == {partition_of(u, 8) for u in users}

    done = partitioning.repartition(5)

    assert (done.old, done.new) == (8, 5)
    assert done.moved >= len(users) * 6
    after = pending_rows(users)
    assert [(u, s) for u, _, s in after] == [(u, s) for u, _, s in before]  # nothing lost
    assert all(p == partition_of(u, 5) for u, p, _ in after)
    # Commands accepted after the switch join their wallet's new partition.
    late = [submit(CommandType.SPEND, user_id=u, asset="GOLD_COINS", amount=1) for u in users]
    assert {row[1] for row in pending_rows(users) if row[2] > before[-1][2]} == {
        partition_of(u, 5) for u in users
    }
    drain_all(partitions=5)
    assert statuses([s["id"] for s in spends]) == Counter({("completed", None): len(spends)})
    # Balances were 0 when the late spends came: each is rejected, none overdraws.
    assert statuses([s["id"] for s in late]) == Counter(
        {("rejected", "insufficient_funds"): len(users)}
    )
    assert all(balance(u) == 0 for u in users)


def test_an_intake_during_a_repartition_waits_and_stores_the_new_count():
    """A repartition holds the intake lock until it commits: a command submitted
    meanwhile is stored after the switch, in its wallet's new partition, never in the
    old one (where it could jump ahead of its wallet's moved commands)."""
    user = users_that_move(1, 8, 3)[0]
    submitted: list[dict] = []
    with get_engine().connect() as switch:
        switch.begin()
        switch.execute(
            text("SELECT pg_advisory_xact_lock(:ns, 0)"),
            {"ns": partitioning.INTAKE_LOCK_NAMESPACE},
        )
        switch.execute(text("UPDATE wallet_partitioning SET partitions = 3"))
        worker = threading.Thread(
            target=lambda: submitted.append(
                submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=1)
            )
        )
        worker.start()
        time.sleep(0.5)
        assert not submitted, "the intake did not wait for the repartition"
        switch.commit()
    worker.join(10)
    assert submitted
    assert pending_rows([user])[0][1] == partition_of(user, 3)


def test_an_active_hold_moves_with_its_wallet_and_its_capture_follows():
    user = users_that_move(1, 8, 6)[0]
    submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=50)
    hold = submit(CommandType.HOLD, user_id=user, asset="GOLD_COINS", amount=20, expires_in=600)
    drain_all()

    partitioning.repartition(6)

    capture = submit(CommandType.CAPTURE, hold_id=uuid.UUID(hold["id"]), amount=5)
    with connect() as conn:
        parts = dict(
            conn.execute(
                text(
                    "SELECT id::text, partition FROM transactions "
                    "WHERE id = ANY(CAST(:ids AS uuid[]))"
                ),
                {"ids": [hold["id"], capture["id"]]},
            ).all()
        )
    assert parts == {hold["id"]: partition_of(user, 6), capture["id"]: partition_of(user, 6)}
    drain_all(partitions=6)
    assert statuses([capture["id"]]) == Counter({("completed", None): 1})
    assert balance(user) == 45


def test_the_sweeper_follows_the_stored_count():
    """After 8 -> 12 a command pending too long in partition 8 or above is swept; the
    sweeper's own setting (8) no longer decides."""
    partitioning.repartition(12)
    user = next(u for u in iter(lambda: unique("sw"), None) if partition_of(u, 12) >= 8)
    tx = submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=1)
    with connect() as conn:
        conn.execute(
            text("UPDATE transactions SET created_at = now() - interval '1 minute' WHERE id = :id"),
            {"id": tx["id"]},
        )
        assert partition_of(user, 12) in partitions_to_sweep(conn, 5, 8)


@pytest.mark.parametrize("count", [0, 65])
def test_a_count_outside_the_consumed_queues_is_refused(count: int):
    with pytest.raises(ValueError, match="WALLET_MAX_PARTITIONS"):
        partitioning.repartition(count)
    assert partitioning.current() == 8
