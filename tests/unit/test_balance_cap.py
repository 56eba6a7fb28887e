"""max_balance: a credit that would take a player's balance above the cap is refused whole."""

from datetime import UTC, datetime

import pytest

from ledger import (
    MAX_AMOUNT,
    AccountRef,
    Applied,
    AssetRules,
    Bonus,
    Book,
    Rejected,
    RejectionCode,
    Reverse,
    Spend,
    TopUp,
    Transfer,
)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
GEMS = "GEMS"


def capped(cap: int = 100, **balances: int) -> Book:
    book = Book(rules={GEMS: AssetRules(max_balance=cap)})
    for owner, amount in balances.items():
        assert isinstance(book.execute(f"seed-{owner}", TopUp(owner, GEMS, amount), T0), Applied)
    return book


def balance(book: Book, owner: str) -> int:
    return book.wallet(AccountRef(owner, GEMS)).balance


def assert_over_cap(outcome: object) -> None:
    assert isinstance(outcome, Rejected), outcome
    assert outcome.code is RejectionCode.BALANCE_LIMIT_EXCEEDED


@pytest.mark.parametrize(
    "credit",
    [TopUp("alice", GEMS, 10), Bonus("alice", GEMS, 10, "welcome")],
    ids=["topup", "bonus"],
)
def test_a_credit_to_exactly_the_cap_applies_and_one_more_is_refused(credit):
    book = capped(alice=90)
    assert isinstance(book.execute("c1", credit, T0), Applied)
    assert balance(book, "alice") == 100
    assert_over_cap(book.execute("c2", TopUp("alice", GEMS, 1), T0))
    assert balance(book, "alice") == 100


def test_a_credit_that_would_cross_the_cap_is_refused_whole_not_in_part():
    book = capped(alice=95)
    assert_over_cap(book.execute("t", TopUp("alice", GEMS, 6), T0))
    assert balance(book, "alice") == 95
    assert not book.changed_wallets - {AccountRef("alice", GEMS)}


def test_a_transfer_in_over_the_payees_cap_is_refused_and_the_payer_keeps_it():
    book = capped(alice=100, bob=50)
    assert_over_cap(book.execute("x", Transfer("alice", "bob", GEMS, 51), T0))
    assert (balance(book, "alice"), balance(book, "bob")) == (100, 50)
    assert isinstance(book.execute("y", Transfer("alice", "bob", GEMS, 50), T0), Applied)
    assert balance(book, "bob") == 100


def test_a_reversal_that_credits_a_player_is_held_to_the_cap():
    book = capped(alice=100)
    book.execute("s", Spend("alice", GEMS, 30), T0)
    book.execute("t", TopUp("alice", GEMS, 30), T0)
    assert_over_cap(book.execute("r", Reverse("s", "refund"), T0))
    assert book.records["s"].reversed_by is None


def test_debits_still_apply_to_a_balance_above_a_lowered_cap():
    book = capped(alice=100)
    book.rules[GEMS] = AssetRules(max_balance=50)
    assert isinstance(book.execute("s", Spend("alice", GEMS, 10), T0), Applied)
    assert_over_cap(book.execute("t", TopUp("alice", GEMS, 1), T0))


def test_an_asset_without_a_cap_is_held_only_to_the_exact_integer_limit():
    book = Book(rules={GEMS: AssetRules(spend_limit_24h=5)})
    assert isinstance(book.execute("t", TopUp("alice", GEMS, MAX_AMOUNT), T0), Applied)
    assert_over_cap(book.execute("t2", TopUp("alice", GEMS, 1), T0))


@pytest.mark.parametrize("value", [0, -1, MAX_AMOUNT + 1])
def test_rules_refuse_settings_that_are_not_positive_amounts(value):
    with pytest.raises(ValueError):
        AssetRules(max_balance=value)
