"""The drain's ordering rules (ledger.scheduling), without a database.

The property test plays the whole system: players spread over partitions, transfers
between them, each partition drained in batches in any order; every wallet must see
its commands in acceptance order, and everything must be applied in the end.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import REVENUE, TREASURY, AccountRef, Applied, CommandType, Posting
from ledger.scheduling import (
    WalletKey,
    credited_user,
    final_amount,
    may_expire_holds,
    schedule,
    wallets_of,
)

LEDGER = 1


@dataclass(frozen=True)
class Pending:
    seq: int
    user_id: str
    to_user_id: str | None = None
    foreign_seq: int | None = None

    @property
    def wallets(self) -> frozenset[WalletKey]:
        return wallets_of(LEDGER, self.user_id, self.to_user_id)


def plan(pending: list[Pending]) -> tuple[list[int], set[WalletKey]]:
    decided = schedule(pending, lambda c: c.wallets, lambda c: c.foreign_seq, lambda c: c.seq)
    return [c.seq for c in decided.ready], decided.waiting


def test_nothing_foreign_everything_is_ready_in_order() -> None:
    ready, waiting = plan([Pending(1, "a"), Pending(2, "b"), Pending(3, "a", "b")])
    assert ready == [1, 2, 3]
    assert waiting == set()


def test_an_earlier_foreign_command_makes_a_command_wait() -> None:
    ready, waiting = plan([Pending(5, "a", foreign_seq=4), Pending(6, "b")])
    assert ready == [6]
    assert waiting == {(LEDGER, "a")}


def test_a_later_foreign_command_does_not() -> None:
    ready, _ = plan([Pending(5, "a", foreign_seq=9)])
    assert ready == [5]


def test_everything_behind_a_waiting_command_on_its_wallets_waits() -> None:
    # 5 waits for another partition; 6 touches a wallet of 5 (its payee) and waits
    # too, and so does 7 (it shares b with 6); 8 is free.
    ready, waiting = plan(
        [
            Pending(5, "a", foreign_seq=1),
            Pending(6, "b", "a"),
            Pending(7, "b"),
            Pending(8, "c"),
        ]
    )
    assert ready == [8]
    assert waiting == {(LEDGER, "a"), (LEDGER, "b")}


def test_the_same_player_in_two_ledgers_is_two_wallets() -> None:
    assert wallets_of(1, "a", None) != wallets_of(2, "a", None)
    assert wallets_of(1, "a", "b") == {(1, "a"), (1, "b")}


def test_holds_expire_only_once_everything_before_them_is_applied() -> None:
    assert may_expire_holds(fetched=3, limit=10, waiting=set())
    assert not may_expire_holds(fetched=10, limit=10, waiting=set())  # maybe more pending
    assert not may_expire_holds(fetched=3, limit=10, waiting={(LEDGER, "a")})


def test_what_a_command_may_create() -> None:
    assert credited_user(CommandType.TOPUP, "a", None) == "a"
    assert credited_user(CommandType.BONUS, "a", None) == "a"
    assert credited_user(CommandType.TRANSFER, "a", "b") == "b"
    for kind in (CommandType.SPEND, CommandType.HOLD, CommandType.CAPTURE, CommandType.EXPIRY):
        assert credited_user(kind, "a", None) is None


def test_final_amounts() -> None:
    took = Applied(
        (Posting(AccountRef("a", "GOLD"), -30), Posting(AccountRef(REVENUE, "GOLD"), 30)),
        AccountRef("a", "GOLD"),
        70,
    )
    assert final_amount(CommandType.CAPTURE, took) == 30
    assert final_amount(CommandType.REVERSE, took) == 30
    assert final_amount(CommandType.EXPIRY, took) == 30
    assert final_amount(CommandType.RELEASE, Applied((), None, None), released=40) == 40
    credit = Applied(
        (Posting(AccountRef(TREASURY, "GOLD"), -5), Posting(AccountRef("a", "GOLD"), 5)),
        AccountRef("a", "GOLD"),
        5,
    )
    assert final_amount(CommandType.TOPUP, credit) is None
    assert final_amount(CommandType.SPEND, took) is None


PLAYERS = ["p0", "p1", "p2", "p3", "p4"]
PARTITIONS = 3


def partition(user: str) -> int:
    return PLAYERS.index(user) % PARTITIONS


commands = st.lists(
    st.tuples(st.sampled_from(PLAYERS), st.one_of(st.none(), st.sampled_from(PLAYERS))).filter(
        lambda c: c[0] != c[1]
    ),
    min_size=1,
    max_size=30,
)


def drain_once(pending: dict[int, Pending], p: int, limit: int) -> list[Pending]:
    """What the database would hand partition p's drain, and what it then applies."""
    own = sorted((c for c in pending.values() if partition(c.user_id) == p), key=lambda c: c.seq)
    batch = [
        Pending(
            c.seq,
            c.user_id,
            c.to_user_id,
            min(
                (
                    f.seq
                    for f in pending.values()
                    if partition(f.user_id) != p and f.wallets & c.wallets
                ),
                default=None,
            ),
        )
        for c in own[:limit]
    ]
    ready = schedule(batch, lambda c: c.wallets, lambda c: c.foreign_seq, lambda c: c.seq).ready
    if pending and partition(pending[min(pending)].user_id) == p:
        # Liveness: the lowest pending seq anywhere is never held back.
        assert min(pending) in {c.seq for c in ready}
    for command in ready:
        del pending[command.seq]
    return ready


@settings(max_examples=300, deadline=None)
@given(commands, st.data())
def test_drained_in_any_order_every_wallet_sees_its_commands_in_acceptance_order(
    accepted: list[tuple[str, str | None]], data: st.DataObject
) -> None:
    everything = [Pending(seq, user, to) for seq, (user, to) in enumerate(accepted, 1)]
    pending = {c.seq: c for c in everything}
    applied: list[Pending] = []
    # Partitions drained in any order, in batches of any size...
    for _ in range(data.draw(st.integers(0, 3 * len(everything)), label="drains")):
        p = data.draw(st.integers(0, PARTITIONS - 1), label="partition")
        applied += drain_once(pending, p, data.draw(st.integers(1, 5), label="limit"))
    # ...then round-robin until idle: every round applies at least the lowest pending.
    while pending:
        before = len(pending)
        for p in range(PARTITIONS):
            applied += drain_once(pending, p, 1000)
        assert len(pending) < before, "a full round of drains made no progress"
    for wallet in {w for c in everything for w in c.wallets}:
        order = [c.seq for c in applied if wallet in c.wallets]
        expected = [c.seq for c in everything if wallet in c.wallets]
        assert order == expected, f"{wallet} saw {order}, accepted {expected}"
