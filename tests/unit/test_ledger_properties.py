"""Property: any sequence of commands of every type keeps every ledger invariant."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import (
    AccountRef,
    Applied,
    Bonus,
    Book,
    Capture,
    Hold,
    HoldStatus,
    Release,
    Reverse,
    Spend,
    TopUp,
    Transfer,
    check_balanced,
)

T0 = datetime(2026, 11, 20, tzinfo=UTC)
USERS = ["alice", "bob", "carol"]
ASSETS = ["GOLD_COINS", "DIAMONDS"]
amounts = st.integers(min_value=1, max_value=200)
users = st.sampled_from(USERS)
assets = st.sampled_from(ASSETS)
refs = st.integers(min_value=0, max_value=40)  # index of an earlier command


def commands():
    return st.one_of(
        st.builds(TopUp, users, assets, amounts),
        st.builds(Bonus, users, assets, amounts),
        st.builds(Spend, users, assets, amounts),
        st.builds(Transfer, users, users, assets, amounts),
        st.builds(
            lambda u, a, n, s: ("hold", u, a, n, s), users, assets, amounts, st.integers(1, 30)
        ),
        st.builds(lambda r, n: ("capture", r, n), refs, st.none() | amounts),
        st.builds(lambda r: ("release", r), refs),
        st.builds(lambda r: ("reverse", r), refs),
        st.builds(lambda s: ("tick", s), st.integers(1, 20)),
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(commands(), min_size=1, max_size=60))
def test_any_sequence_keeps_every_invariant(script):
    book = Book()
    now = T0
    ids: list[str] = []
    postings_by_account: dict[AccountRef, int] = defaultdict(int)
    per_asset: dict[str, int] = defaultdict(int)
    for step, item in enumerate(script):
        tx_id = f"tx{step}"
        if isinstance(item, tuple):
            kind, *args = item
            if kind == "tick":
                now += timedelta(seconds=args[0])
                continue
            if kind == "hold":
                command = Hold(args[0], args[1], args[2], now + timedelta(seconds=args[3]))
            else:
                target = ids[args[0] % len(ids)] if ids else "none"
                if kind == "capture":
                    command = Capture(target, args[1])
                elif kind == "release":
                    command = Release(target)
                else:
                    command = Reverse(target, "property")
        else:
            command = item
        outcome = book.execute(tx_id, command, now)
        ids.append(tx_id)
        if isinstance(outcome, Applied):
            check_balanced(outcome.postings) if outcome.postings else None
            for posting in outcome.postings:
                postings_by_account[posting.account] += posting.amount
                per_asset[posting.account.asset] += posting.amount

        # Every asset's accounts sum to zero.
        assert all(total == 0 for total in per_asset.values())
        active = defaultdict(int)
        for hold in book.holds.values():
            if hold.status is HoldStatus.ACTIVE:
                active[hold.account] += hold.amount
        for account, wallet in book.wallets.items():
            # A cached balance is the sum of the account's postings.
            assert wallet.balance == postings_by_account[account]
            # Held is exactly the active holds, and available never goes below zero.
            assert wallet.held == active[account]
            assert wallet.held >= 0
            assert wallet.available >= 0
        # Each completed transaction is reversed at most once.
        reversed_ids = list(book.reversals)
        assert len(reversed_ids) == len(set(reversed_ids))
