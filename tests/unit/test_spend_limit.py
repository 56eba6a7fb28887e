"""spend_limit_24h: a player's own debits (spend, transfer out, capture) in any rolling
24 hours, measured at each command's acceptance instant."""

from datetime import UTC, datetime, timedelta

from ledger import (
    AccountRef,
    Applied,
    AssetRules,
    Book,
    Capture,
    Debit,
    Hold,
    Rejected,
    RejectionCode,
    Reverse,
    Spend,
    TopUp,
    Transfer,
    recent_debits,
)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
DAY = timedelta(hours=24)
GEMS = "GEMS"


def limited(limit: int = 100, funds: int = 1000) -> Book:
    book = Book(rules={GEMS: AssetRules(spend_limit_24h=limit)})
    book.execute("seed", TopUp("alice", GEMS, funds), T0)
    book.execute("seed-bob", TopUp("bob", GEMS, funds), T0)
    return book


def assert_limited(outcome: object) -> None:
    assert isinstance(outcome, Rejected), outcome
    assert outcome.code is RejectionCode.SPEND_LIMIT_EXCEEDED


def test_the_limit_is_reached_across_spend_transfer_and_capture():
    book = limited(100)
    assert isinstance(book.execute("s", Spend("alice", GEMS, 40), T0), Applied)
    assert isinstance(book.execute("x", Transfer("alice", "bob", GEMS, 30), T0), Applied)
    hold = Hold("alice", GEMS, 50, T0 + timedelta(minutes=5))
    assert isinstance(book.execute("h", hold, T0), Applied)
    assert_limited(book.execute("c0", Capture("h", 31), T0))
    assert isinstance(book.execute("c", Capture("h", 30), T0), Applied)  # exactly 100
    assert_limited(book.execute("s2", Spend("alice", GEMS, 1), T0))
    assert book.wallet(AccountRef("alice", GEMS)).balance == 900


def test_a_debit_leaves_the_window_exactly_24_hours_after_it_was_accepted():
    book = limited(100)
    book.execute("s", Spend("alice", GEMS, 100), T0)
    assert_limited(book.execute("s1", Spend("alice", GEMS, 1), T0 + DAY - timedelta(seconds=1)))
    assert isinstance(book.execute("s2", Spend("alice", GEMS, 100), T0 + DAY), Applied)


def test_the_window_rolls_rather_than_resetting_at_a_fixed_hour():
    book = limited(100)
    book.execute("a", Spend("alice", GEMS, 60), T0)
    book.execute("b", Spend("alice", GEMS, 40), T0 + timedelta(hours=12))
    # 24 h after the first: it is out, the second is still in.
    assert_limited(book.execute("c", Spend("alice", GEMS, 61), T0 + DAY))
    assert isinstance(book.execute("d", Spend("alice", GEMS, 60), T0 + DAY), Applied)


def test_a_hold_is_not_a_debit_but_its_capture_is():
    book = limited(100)
    hold = Hold("alice", GEMS, 500, T0 + timedelta(minutes=5))
    assert isinstance(book.execute("h", hold, T0), Applied)  # reserving 500 is fine
    assert book.wallet(AccountRef("alice", GEMS)).debits == ()
    assert_limited(book.execute("c", Capture("h"), T0))
    assert book.holds["h"].status.value == "active"  # a refused capture leaves the hold


def test_a_reversed_spend_does_not_give_the_limit_back():
    book = limited(100)
    book.execute("s", Spend("alice", GEMS, 100), T0)
    assert isinstance(book.execute("r", Reverse("s", "refund"), T0), Applied)
    assert_limited(book.execute("s2", Spend("alice", GEMS, 1), T0))


def test_credits_and_reversals_that_debit_a_player_do_not_count():
    book = limited(50)
    assert isinstance(book.execute("x", Transfer("bob", "alice", GEMS, 50), T0), Applied)
    assert isinstance(book.execute("r", Reverse("x", "fraud"), T0), Applied)  # debits alice
    assert isinstance(book.execute("s", Spend("alice", GEMS, 50), T0), Applied)


def test_the_limit_counts_the_debits_the_drain_loaded_from_before_the_batch():
    book = Book(rules={GEMS: AssetRules(spend_limit_24h=100)})
    book.wallets[AccountRef("alice", GEMS)] = book.wallet(AccountRef("alice", GEMS))
    wallet = book.wallet(AccountRef("alice", GEMS))
    wallet.balance = 500
    wallet.debits = (Debit(T0 - timedelta(hours=23), 70), Debit(T0 - DAY, 500))
    assert_limited(book.execute("s", Spend("alice", GEMS, 31), T0))
    assert isinstance(book.execute("s2", Spend("alice", GEMS, 30), T0), Applied)
    # The book keeps only what can still count, and adds what it applied.
    assert wallet.debits == (Debit(T0 - timedelta(hours=23), 70), Debit(T0, 30))


def test_recent_debits_keeps_what_a_later_command_could_still_count():
    debits = (Debit(T0 - DAY, 1), Debit(T0 - DAY + timedelta(microseconds=1), 2))
    assert recent_debits(debits, T0) == debits[1:]


def test_an_asset_without_a_limit_keeps_no_debits():
    book = Book(rules={GEMS: AssetRules(max_balance=10_000)})
    book.execute("t", TopUp("alice", GEMS, 100), T0)
    book.execute("s", Spend("alice", GEMS, 100), T0)
    assert book.wallet(AccountRef("alice", GEMS)).debits == ()
