"""The rules the intake applies early are the book's: for every command type an
original may have, and for capture amounts around the hold, `ledger.rules` answers
exactly as `Book` decides (so a 422 at intake never refuses what the book would apply,
and what the intake lets through the book decides the same way)."""

from datetime import UTC, datetime, timedelta

import pytest

from ledger import (
    MAX_AMOUNT,
    Applied,
    Book,
    Capture,
    CommandType,
    Hold,
    Rejected,
    RejectionCode,
    Release,
    Reverse,
    Spend,
    TopUp,
    Transfer,
    capture_exceeds_hold,
    is_hold,
    is_reversible,
    is_same_wallet_transfer,
)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
GOLD = "GOLD_COINS"
ORIGINALS = {
    CommandType.TOPUP: TopUp("alice", GOLD, 10),
    CommandType.SPEND: Spend("alice", GOLD, 5, "sword"),
    CommandType.TRANSFER: Transfer("alice", "bob", GOLD, 5),
    CommandType.HOLD: Hold("alice", GOLD, 5, T0 + timedelta(hours=1)),
}


def _book() -> Book:
    book = Book()
    book.execute("seed", TopUp("alice", GOLD, 100), T0)
    return book


@pytest.mark.parametrize("kind", list(ORIGINALS))
@pytest.mark.parametrize("rejected", [False, True])
def test_a_reversal_is_refused_by_the_book_exactly_when_the_rule_says(kind, rejected):
    book = _book()
    command = ORIGINALS[kind]
    if rejected:  # an original the book rejected: too large to apply (or to hold)
        too_much = MAX_AMOUNT if kind is CommandType.TOPUP else 10_000
        command = type(command)(**{**command.__dict__, "amount": too_much})
    original = book.execute("original", command, T0)
    assert isinstance(original, Rejected) is rejected
    outcome = book.execute("reversal", Reverse("original", "support"), T0)
    refused = isinstance(outcome, Rejected) and outcome.code is RejectionCode.NOT_REVERSIBLE
    assert refused is not is_reversible(kind, rejected=rejected)


@pytest.mark.parametrize("amount", [None, 1, 49, 50, 51, 500])
def test_a_capture_is_refused_by_the_book_exactly_when_it_exceeds_the_hold(amount):
    book = _book()
    assert isinstance(
        book.execute("h", Hold("alice", GOLD, 50, T0 + timedelta(hours=1)), T0), Applied
    )
    outcome = book.execute("c", Capture("h", amount), T0)
    refused = isinstance(outcome, Rejected) and outcome.code is RejectionCode.CAPTURE_EXCEEDS_HOLD
    assert refused is capture_exceeds_hold(amount, 50)


@pytest.mark.parametrize(("payer", "payee"), [("alice", "alice"), ("alice", "bob")])
def test_a_transfer_to_the_same_wallet_is_refused_by_the_book_exactly_when_the_rule_says(
    payer, payee
):
    outcome = _book().execute("t", Transfer(payer, payee, GOLD, 1), T0)
    refused = isinstance(outcome, Rejected) and outcome.code is RejectionCode.SAME_ACCOUNT
    assert refused is is_same_wallet_transfer(payer, payee)


@pytest.mark.parametrize("kind", list(CommandType))
def test_only_a_hold_may_be_captured_or_released(kind):
    """The book knows only holds as holds: a capture or release of anything else finds
    no hold (hold_not_active); the intake says so earlier, as not_a_hold."""
    assert is_hold(kind) is (kind is CommandType.HOLD)
    book = _book()
    if kind in ORIGINALS:
        book.execute("x", ORIGINALS[kind], T0)
        outcome = book.execute("r", Release("x"), T0)
        assert isinstance(outcome, Applied) is is_hold(kind)
