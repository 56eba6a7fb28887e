"""The drain under real concurrency: threads submitting while threads drain."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text

from db.engine import connect
from ledger import CommandType, partition_of
from tests.integration.helpers import Drainers, balance, drain_all, statuses, submit
from tests.support import unique


def test_1000_concurrent_spends_of_1_against_100_complete_exactly_100_times(rings):
    user = unique()
    submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=100)
    drain_all()
    with Drainers({partition_of(user, 8)}), ThreadPoolExecutor(max_workers=32) as pool:
        spends = list(
            pool.map(
                lambda _: submit(CommandType.SPEND, user_id=user, asset="GOLD_COINS", amount=1),
                range(1000),
            )
        )
    outcome = statuses([s["id"] for s in spends])
    assert outcome == Counter({("completed", None): 100, ("rejected", "insufficient_funds"): 900})
    assert balance(user) == 0


def test_commands_of_one_wallet_apply_in_acceptance_order(rings):
    """40 players, each: top up 10 then spend 10, five times, while drains run."""
    users = [unique() for _ in range(40)]

    def play(user: str) -> list[str]:
        spends = []
        for _ in range(5):
            submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=10)
            spends.append(
                submit(CommandType.SPEND, user_id=user, asset="GOLD_COINS", amount=10)["id"]
            )
        return spends

    with Drainers({partition_of(u, 8) for u in users}), ThreadPoolExecutor(max_workers=40) as pool:
        spends = [s for per_user in pool.map(play, users) for s in per_user]
    assert statuses(spends) == Counter({("completed", None): 200})
    assert all(balance(u) == 0 for u in users)


def test_a_command_that_cannot_be_applied_is_rejected_alone(rings):
    """A poison command (here: a top-up row with no amount) must not stall its partition."""
    user = unique()
    before = submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=5)
    poison = submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=6)
    after = submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=7)
    with connect() as conn:
        conn.execute(
            text("UPDATE transactions SET amount = NULL WHERE id = :id"), {"id": poison["id"]}
        )
    drain_all()
    assert statuses([before["id"], after["id"]]) == Counter({("completed", None): 2})
    assert statuses([poison["id"]]) == Counter({("rejected", "internal_error"): 1})
    assert balance(user) == 12
