"""freeze / unfreeze: ordered commands; while frozen a player's own debits are refused."""

from datetime import UTC, datetime, timedelta

import pytest

from ledger import (
    AccountRef,
    Applied,
    Bonus,
    Book,
    Capture,
    Freeze,
    Frozen,
    Hold,
    Rejected,
    RejectionCode,
    Release,
    Reverse,
    Spend,
    TopUp,
    Transfer,
    Unfreeze,
)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
GOLD, GEMS = "GOLD_COINS", "GEMS"


def t(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def funded() -> Book:
    book = Book()
    for asset in (GOLD, GEMS):
        book.execute(f"seed-{asset}", TopUp("alice", asset, 100), T0)
    book.execute("seed-bob", TopUp("bob", GOLD, 100), T0)
    return book


def frozen_code(outcome: object) -> bool:
    return isinstance(outcome, Rejected) and outcome.code is RejectionCode.WALLET_FROZEN


def test_a_spend_accepted_before_the_freeze_applies_and_one_after_is_refused():
    book = funded()
    assert isinstance(book.execute("s1", Spend("alice", GOLD, 10), t(1)), Applied)
    freeze = book.execute("f", Freeze("alice", "chargeback"), t(2))
    assert freeze == Applied((), None, None)
    assert frozen_code(book.execute("s2", Spend("alice", GOLD, 10), t(3)))
    assert book.wallet(AccountRef("alice", GOLD)).balance == 90
    assert book.changed_freezes == {"alice": Frozen("chargeback", t(2))}


@pytest.mark.parametrize(
    "debit",
    [
        Spend("alice", GEMS, 1),
        Transfer("alice", "bob", GOLD, 1),
        Hold("alice", GOLD, 1, t(600)),
    ],
    ids=["spend in another asset", "transfer out", "hold"],
)
def test_every_own_debit_of_a_frozen_player_is_refused_in_every_asset(debit):
    book = funded()
    book.execute("f", Freeze("alice", "fraud"), t(1))
    assert frozen_code(book.execute("d", debit, t(2)))


def test_the_capture_of_a_hold_placed_before_the_freeze_is_refused_and_the_hold_stays():
    book = funded()
    book.execute("h", Hold("alice", GOLD, 30, t(600)), t(1))
    book.execute("f", Freeze("alice", "fraud"), t(2))
    assert frozen_code(book.execute("c", Capture("h"), t(3)))
    assert book.holds["h"].status.value == "active"
    assert isinstance(book.execute("r", Release("h"), t(4)), Applied)  # releases still apply
    assert book.wallet(AccountRef("alice", GOLD)).held == 0


def test_credits_transfers_in_and_reversals_still_apply_to_a_frozen_player():
    book = funded()
    book.execute("s", Spend("alice", GOLD, 10), t(1))
    book.execute("f", Freeze("alice", "fraud"), t(2))
    assert isinstance(book.execute("b", Bonus("alice", GOLD, 5), t(3)), Applied)
    assert isinstance(book.execute("x", Transfer("bob", "alice", GOLD, 5), t(4)), Applied)
    assert isinstance(book.execute("r", Reverse("seed-GEMS", "chargeback"), t(5)), Applied)
    assert isinstance(book.execute("r2", Reverse("s", "refund"), t(6)), Applied)


def test_unfreeze_lets_the_player_debit_again():
    book = funded()
    book.execute("f", Freeze("alice", "fraud"), t(1))
    assert isinstance(book.execute("u", Unfreeze("alice", "cleared"), t(2)), Applied)
    assert isinstance(book.execute("s", Spend("alice", GOLD, 10), t(3)), Applied)
    assert book.frozen == {} and book.changed_freezes == {"alice": None}


def test_a_second_freeze_completes_and_keeps_the_first_reason_and_instant():
    book = funded()
    book.execute("f1", Freeze("alice", "fraud"), t(1))
    book.changed_freezes.clear()
    assert isinstance(book.execute("f2", Freeze("alice", "other"), t(2)), Applied)
    assert book.frozen["alice"] == Frozen("fraud", t(1))
    assert book.changed_freezes == {}


def test_unfreezing_a_player_who_is_not_frozen_completes_with_no_effect():
    book = funded()
    assert isinstance(book.execute("u", Unfreeze("alice"), t(1)), Applied)
    assert book.frozen == {} and book.changed_freezes == {}


def test_the_freeze_the_drain_loaded_applies_from_the_first_command():
    book = funded()
    book.frozen["alice"] = Frozen("loaded", T0)
    assert frozen_code(book.execute("s", Spend("alice", GOLD, 1), t(1)))
    assert isinstance(book.execute("s2", Spend("bob", GOLD, 1), t(1)), Applied)
