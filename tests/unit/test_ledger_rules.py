"""The posting rules and checks of every command type, decided in memory."""

from datetime import UTC, datetime, timedelta

import pytest

from ledger import (
    MAX_AMOUNT,
    PROMOTIONS,
    REVENUE,
    TREASURY,
    AccountRef,
    Applied,
    Bonus,
    Book,
    Capture,
    HoldStatus,
    Rejected,
    RejectionCode,
    Release,
    Reverse,
    Spend,
    TopUp,
    Transfer,
    UnbalancedPostings,
    check_balanced,
)
from ledger import Hold as HoldCommand
from ledger.postings import Posting

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
GOLD = "GOLD_COINS"


def ref(owner: str) -> AccountRef:
    return AccountRef(owner, GOLD)


def funded(owner: str = "alice", amount: int = 100) -> Book:
    book = Book()
    book.execute("seed", TopUp(owner, GOLD, amount), T0)
    return book


def test_topup_moves_money_from_treasury_to_the_user():
    book = Book()
    outcome = book.execute("t1", TopUp("alice", GOLD, 500), T0)
    assert outcome == Applied(
        (Posting(ref(TREASURY), -500), Posting(ref("alice"), 500)), ref("alice"), 500
    )
    assert book.wallet(ref("alice")).balance == 500


def test_bonus_comes_from_promotions_and_spend_goes_to_revenue():
    book = Book()
    bonus = book.execute("b", Bonus("alice", GOLD, 30, "welcome"), T0)
    spend = book.execute("s", Spend("alice", GOLD, 20, "sword"), T0)
    assert isinstance(bonus, Applied) and isinstance(spend, Applied)
    assert bonus.postings[0].account == ref(PROMOTIONS)
    assert spend.postings[1] == Posting(ref(REVENUE), 20)
    assert spend.balance_after == 10


def test_spend_beyond_available_is_rejected_and_changes_nothing():
    book = funded(amount=10)
    outcome = book.execute("s", Spend("alice", GOLD, 11), T0)
    assert isinstance(outcome, Rejected)
    assert outcome.code is RejectionCode.INSUFFICIENT_FUNDS
    assert book.wallet(ref("alice")).balance == 10


def test_spend_by_a_user_without_a_wallet_is_insufficient_funds():
    outcome = Book().execute("s", Spend("ghost", GOLD, 1), T0)
    assert isinstance(outcome, Rejected) and outcome.code is RejectionCode.INSUFFICIENT_FUNDS


def test_a_credit_may_not_push_a_balance_past_the_exact_integer_limit():
    book = funded(amount=MAX_AMOUNT)
    outcome = book.execute("t", TopUp("alice", GOLD, 1), T0)
    assert isinstance(outcome, Rejected)
    assert outcome.code is RejectionCode.BALANCE_LIMIT_EXCEEDED


def test_transfer_moves_between_users_and_checks_the_payer():
    book = funded("alice", 50)
    ok = book.execute("t", Transfer("alice", "bob", GOLD, 30), T0)
    short = book.execute("t2", Transfer("alice", "bob", GOLD, 21), T0)
    assert isinstance(ok, Applied) and ok.balance_after == 20
    assert isinstance(short, Rejected) and short.code is RejectionCode.INSUFFICIENT_FUNDS
    assert book.wallet(ref("bob")).balance == 30


def test_transfer_to_the_same_wallet_is_rejected():
    outcome = funded().execute("t", Transfer("alice", "alice", GOLD, 1), T0)
    assert isinstance(outcome, Rejected) and outcome.code is RejectionCode.SAME_ACCOUNT


def hold(book: Book, hold_id: str = "h", amount: int = 60, seconds: int = 60) -> None:
    outcome = book.execute(
        hold_id, HoldCommand("alice", GOLD, amount, T0 + timedelta(seconds=seconds)), T0
    )
    assert isinstance(outcome, Applied)


def test_a_hold_reserves_funds_that_spends_cannot_use():
    book = funded(amount=100)
    hold(book, amount=60)
    wallet = book.wallet(ref("alice"))
    assert (wallet.balance, wallet.held, wallet.available) == (100, 60, 40)
    eat = book.execute("s", Spend("alice", GOLD, 41), T0)
    assert isinstance(eat, Rejected) and eat.code is RejectionCode.INSUFFICIENT_FUNDS
    second = book.execute("h2", HoldCommand("alice", GOLD, 41, T0 + timedelta(seconds=5)), T0)
    assert isinstance(second, Rejected)
    assert isinstance(book.execute("s2", Spend("alice", GOLD, 40), T0), Applied)


def test_partial_capture_takes_part_and_releases_the_rest():
    book = funded(amount=100)
    hold(book, amount=60)
    outcome = book.execute("c", Capture("h", 25), T0)
    assert isinstance(outcome, Applied)
    assert outcome.postings == (Posting(ref("alice"), -25), Posting(ref(REVENUE), 25))
    wallet = book.wallet(ref("alice"))
    assert (wallet.balance, wallet.held) == (75, 0)
    assert book.holds["h"].status is HoldStatus.CAPTURED


def test_capture_defaults_to_the_whole_hold_and_cannot_exceed_it():
    book = funded(amount=100)
    hold(book, amount=60)
    too_much = book.execute("c0", Capture("h", 61), T0)
    assert isinstance(too_much, Rejected) and too_much.code is RejectionCode.CAPTURE_EXCEEDS_HOLD
    whole = book.execute("c1", Capture("h"), T0)
    assert isinstance(whole, Applied) and whole.postings[1].amount == 60


@pytest.mark.parametrize("second", [Capture("h"), Release("h")])
def test_a_hold_ends_once_and_a_second_transition_is_hold_not_active(second):
    book = funded(amount=100)
    hold(book)
    assert isinstance(book.execute("r", Release("h"), T0), Applied)
    outcome = book.execute("x", second, T0)
    assert isinstance(outcome, Rejected) and outcome.code is RejectionCode.HOLD_NOT_ACTIVE
    assert book.wallet(ref("alice")).held == 0
    assert book.wallet(ref("alice")).balance == 100


def test_capture_accepted_after_expiry_expires_the_hold_and_is_rejected():
    book = funded(amount=100)
    hold(book, seconds=10)
    outcome = book.execute("c", Capture("h"), T0 + timedelta(seconds=10))
    assert isinstance(outcome, Rejected) and outcome.code is RejectionCode.HOLD_NOT_ACTIVE
    assert book.holds["h"].status is HoldStatus.EXPIRED
    assert book.wallet(ref("alice")).held == 0


def test_capture_accepted_before_expiry_succeeds_even_if_applied_later():
    book = funded(amount=100)
    hold(book, seconds=10)
    outcome = book.execute("c", Capture("h"), T0 + timedelta(seconds=9))
    assert isinstance(outcome, Applied)


def test_expire_releases_an_active_hold_only():
    book = funded(amount=100)
    hold(book)
    book.expire("h")
    assert book.holds["h"].status is HoldStatus.EXPIRED
    book.expire("h")
    assert book.wallet(ref("alice")).held == 0


def test_capture_of_an_unknown_hold_is_hold_not_active():
    outcome = funded().execute("c", Capture("nope"), T0)
    assert isinstance(outcome, Rejected) and outcome.code is RejectionCode.HOLD_NOT_ACTIVE


def test_reversal_posts_the_opposite_of_the_original_once():
    book = funded(amount=100)
    book.execute("s", Spend("alice", GOLD, 40), T0)
    first = book.execute("r1", Reverse("s", "refund"), T0)
    second = book.execute("r2", Reverse("s", "again"), T0)
    assert isinstance(first, Applied)
    assert first.postings == (Posting(ref("alice"), 40), Posting(ref(REVENUE), -40))
    assert book.wallet(ref("alice")).balance == 100
    assert isinstance(second, Rejected) and second.code is RejectionCode.ALREADY_REVERSED
    assert book.records["s"].reversed_by == "r1"


def test_reversal_that_would_overdraw_is_insufficient_funds():
    book = funded(amount=100)
    book.execute("s", Spend("alice", GOLD, 90), T0)
    outcome = book.execute("r", Reverse("seed", "chargeback"), T0)
    assert isinstance(outcome, Rejected) and outcome.code is RejectionCode.INSUFFICIENT_FUNDS
    assert book.records["seed"].reversed_by is None


def test_reversal_of_a_rejected_or_unreversible_transaction_is_not_reversible():
    book = funded(amount=10)
    book.execute("s", Spend("alice", GOLD, 11), T0)  # rejected
    hold(book, amount=5)
    for target in ("s", "h", "missing"):
        outcome = book.execute(f"r-{target}", Reverse(target, "x"), T0)
        assert isinstance(outcome, Rejected) and outcome.code is RejectionCode.NOT_REVERSIBLE


def test_transfer_reversal_moves_money_back_from_the_payee():
    book = funded("alice", 50)
    book.execute("t", Transfer("alice", "bob", GOLD, 30), T0)
    outcome = book.execute("r", Reverse("t", "fraud"), T0)
    assert isinstance(outcome, Applied)
    assert book.wallet(ref("bob")).balance == 0
    assert book.wallet(ref("alice")).balance == 50


def test_check_balanced_refuses_residuals_and_zero_postings():
    check_balanced([Posting(ref("a"), 5), Posting(ref("b"), -5)])
    with pytest.raises(UnbalancedPostings):
        check_balanced([Posting(ref("a"), 5), Posting(ref("b"), -4)])
    with pytest.raises(UnbalancedPostings):
        check_balanced([Posting(ref("a"), 0)])
    with pytest.raises(UnbalancedPostings):
        check_balanced([Posting(ref("a"), 5), Posting(AccountRef("b", "DIAMONDS"), -5)])
