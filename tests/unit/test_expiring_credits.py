"""credit_lifetime: every credit is a lot that expires; debits and holds take the soonest
first, and a lot is expired for every command accepted at or after its instant."""

from datetime import UTC, datetime, timedelta

import pytest

from ledger import (
    EXPIRED,
    AccountRef,
    Applied,
    AssetRules,
    Book,
    Capture,
    Expiry,
    Freeze,
    Hold,
    HoldStatus,
    LedgerError,
    Lot,
    Rejected,
    RejectionCode,
    Release,
    Reverse,
    Spend,
    TopUp,
    Transfer,
    due_expiries,
    expiring,
    unexpiring,
)
from ledger.postings import Posting

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
GEMS = "GEMS"
LIFE = 3600


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


ALICE = AccountRef("alice", GEMS)


def expiring_book(*credits: tuple[int, float]) -> Book:
    """alice credited `amount` at each `second`: one lot each, expiring LIFE later."""
    book = Book(rules={GEMS: AssetRules(credit_lifetime=LIFE)})
    for i, (amount, at) in enumerate(credits):
        assert isinstance(book.execute(f"t{i}", TopUp("alice", GEMS, amount), s(at)), Applied)
    return book


def lots(book: Book, owner: str = "alice") -> tuple[Lot, ...]:
    return book.wallet(AccountRef(owner, GEMS)).lots


def rejected(outcome: object, code: RejectionCode) -> bool:
    return isinstance(outcome, Rejected) and outcome.code is code


def test_each_credit_becomes_a_lot_expiring_its_lifetime_after_acceptance():
    book = expiring_book((30, 0), (20, 10), (5, 10))
    assert lots(book) == (Lot(30, s(LIFE)), Lot(25, s(LIFE + 10)))
    assert book.wallet(ALICE).balance == 55


def test_a_spend_takes_the_lots_that_expire_soonest_first():
    book = expiring_book((30, 0), (20, 10))
    assert isinstance(book.execute("s", Spend("alice", GEMS, 35), s(20)), Applied)
    assert lots(book) == (Lot(15, s(LIFE + 10)),)


def test_a_spend_accepted_before_the_expiry_instant_uses_the_lot_one_at_it_cannot():
    book = expiring_book((30, 0))
    just_before = book.execute("s1", Spend("alice", GEMS, 10), s(LIFE - 0.001))
    assert isinstance(just_before, Applied)
    at_instant = book.execute("s2", Spend("alice", GEMS, 1), s(LIFE))
    assert rejected(at_instant, RejectionCode.INSUFFICIENT_FUNDS)
    # Even before the expiry command is applied, the lot is out of reach; it is still
    # in the balance until then.
    assert book.wallet(ALICE).balance == 20


def test_the_expiry_moves_what_is_left_of_the_lot_to_expired():
    book = expiring_book((30, 0), (20, 10))
    book.execute("s", Spend("alice", GEMS, 10), s(5))
    outcome = book.execute("e", Expiry("alice", GEMS, s(LIFE)), s(LIFE + 1))
    assert isinstance(outcome, Applied)
    assert outcome.postings == (Posting(ALICE, -20), Posting(AccountRef(EXPIRED, GEMS), 20))
    assert outcome.balance_after == 20
    assert lots(book) == (Lot(20, s(LIFE + 10)),)
    assert ALICE in book.changed_wallets


def test_an_expiry_with_nothing_left_or_not_yet_due_is_rejected_without_effect():
    book = expiring_book((30, 0))
    early = book.execute("e0", Expiry("alice", GEMS, s(LIFE)), s(LIFE - 1))
    assert rejected(early, RejectionCode.NOTHING_TO_EXPIRE)
    book.execute("s", Spend("alice", GEMS, 30), s(1))
    spent = book.execute("e1", Expiry("alice", GEMS, s(LIFE)), s(LIFE))
    assert rejected(spent, RejectionCode.NOTHING_TO_EXPIRE)


def test_an_expiry_of_a_frozen_players_lot_still_applies():
    book = expiring_book((30, 0))
    book.execute("f", Freeze("alice", "fraud review"), s(1))
    assert isinstance(book.execute("e", Expiry("alice", GEMS, s(LIFE)), s(LIFE)), Applied)


def test_a_hold_keeps_its_lots_and_expiry_takes_only_what_is_unreserved():
    book = expiring_book((50, 0), (50, 10))
    hold = Hold("alice", GEMS, 60, s(LIFE + 600))
    assert isinstance(book.execute("h", hold, s(20)), Applied)
    assert book.holds["h"].lots == (Lot(50, s(LIFE)), Lot(10, s(LIFE + 10)))
    assert lots(book) == (Lot(40, s(LIFE + 10)),)
    # The first lot is all under the hold: nothing of it expires.
    first = book.execute("e1", Expiry("alice", GEMS, s(LIFE)), s(LIFE))
    assert rejected(first, RejectionCode.NOTHING_TO_EXPIRE)
    # Held funds are protected: the hold captures from its own lots, expired or not.
    assert isinstance(book.execute("c", Capture("h", 55), s(LIFE + 20)), Applied)
    # The uncaptured 5 (of the second lot, the soonest were captured) comes back expired
    # with the rest of that lot, and the next expiry takes all of it.
    assert lots(book) == (Lot(45, s(LIFE + 10)),)
    wallet = book.wallet(ALICE)
    assert (wallet.balance, wallet.held) == (45, 0)
    second = book.execute("e2", Expiry("alice", GEMS, s(LIFE + 10)), s(LIFE + 20))
    assert isinstance(second, Applied) and second.balance_after == 0


def test_a_released_hold_gives_back_lots_that_expired_under_it_already_expired():
    book = expiring_book((50, 0))
    book.execute("h", Hold("alice", GEMS, 50, s(LIFE + 600)), s(1))
    assert isinstance(book.execute("r", Release("h"), s(LIFE + 5)), Applied)
    assert lots(book) == (Lot(50, s(LIFE)),)
    assert rejected(
        book.execute("s", Spend("alice", GEMS, 1), s(LIFE + 5)), RejectionCode.INSUFFICIENT_FUNDS
    )
    assert due_expiries(lots(book), s(LIFE + 5)) == (Lot(50, s(LIFE)),)


def test_a_hold_expiry_returns_the_holds_lots_to_the_wallet():
    book = expiring_book((50, 0))
    book.execute("h", Hold("alice", GEMS, 20, s(60)), s(1))
    book.expire("h")
    assert book.holds["h"].status is HoldStatus.EXPIRED
    assert lots(book) == (Lot(50, s(LIFE)),)


def test_a_hold_cannot_reserve_credit_that_has_expired():
    book = expiring_book((50, 0), (10, 100))
    outcome = book.execute("h", Hold("alice", GEMS, 11, s(LIFE + 600)), s(LIFE))
    assert rejected(outcome, RejectionCode.INSUFFICIENT_FUNDS)
    assert isinstance(book.execute("h2", Hold("alice", GEMS, 10, s(LIFE + 600)), s(LIFE)), Applied)


def test_a_transfer_hands_the_payers_lots_to_the_payee_with_their_expiry():
    book = expiring_book((30, 0), (30, 100))
    book.execute("x", Transfer("alice", "bob", GEMS, 40), s(200))
    assert lots(book, "bob") == (Lot(30, s(LIFE)), Lot(10, s(LIFE + 100)))
    assert lots(book) == (Lot(20, s(LIFE + 100)),)
    # Passing it back does not make it young again.
    book.execute("y", Transfer("bob", "alice", GEMS, 40), s(300))
    assert lots(book) == (Lot(30, s(LIFE)), Lot(30, s(LIFE + 100)))


def test_a_reversed_spend_comes_back_as_a_fresh_lot():
    book = expiring_book((30, 0))
    book.execute("s", Spend("alice", GEMS, 30), s(10))
    book.execute("r", Reverse("s", "refund"), s(20))
    assert lots(book) == (Lot(30, s(LIFE + 20)),)


def test_a_reversed_top_up_takes_the_soonest_live_lots():
    book = expiring_book((30, 0), (30, 10))
    assert isinstance(book.execute("r", Reverse("t1", "chargeback"), s(20)), Applied)
    assert lots(book) == (Lot(30, s(LIFE + 10)),)


def test_credits_from_before_the_lifetime_never_expire_and_go_last():
    book = Book(rules={GEMS: AssetRules(credit_lifetime=LIFE)})
    # What the drain loads for a wallet whose stored lots are NULL.
    book.wallets[ALICE] = wallet = book.wallet(ALICE)
    wallet.balance, wallet.lots = 40, unexpiring(40)
    book.execute("t", TopUp("alice", GEMS, 10), s(0))
    assert lots(book) == (Lot(10, s(LIFE)), Lot(40, None))
    book.execute("s", Spend("alice", GEMS, 15), s(1))
    assert lots(book) == (Lot(35, None),)
    assert due_expiries(lots(book), s(10 * LIFE)) == ()


def test_a_hold_whose_lots_do_not_cover_it_is_a_broken_invariant():
    book = expiring_book((50, 0))
    book.execute("h", Hold("alice", GEMS, 20, s(60)), s(1))
    book.holds["h"].lots = ()
    with pytest.raises(LedgerError):
        book.execute("r", Release("h"), s(2))


def test_the_expiring_view_is_soonest_first_at_most_ten_and_never_the_undated():
    many = (*(Lot(i + 1, s(100 - i)) for i in range(12)), Lot(7, None))
    view = expiring(many)
    assert len(view) == 10
    assert [lot.expires_at for lot in view] == sorted(lot.expires_at for lot in view)
    assert view[0] == Lot(12, s(89))


def test_due_expiries_are_the_lots_whose_instant_has_come():
    book = expiring_book((30, 0), (20, 10))
    assert due_expiries(lots(book), s(LIFE - 1)) == ()
    assert due_expiries(lots(book), s(LIFE)) == (Lot(30, s(LIFE)),)
    assert due_expiries(lots(book), s(LIFE + 10)) == (Lot(30, s(LIFE)), Lot(20, s(LIFE + 10)))


def test_an_asset_without_a_lifetime_keeps_no_lots():
    book = Book()
    book.execute("t", TopUp("alice", GEMS, 30), s(0))
    book.execute("h", Hold("alice", GEMS, 10, s(60)), s(0))
    assert lots(book) == () and book.holds["h"].lots == ()
    assert rejected(
        book.execute("e", Expiry("alice", GEMS, s(0)), s(0)), RejectionCode.NOTHING_TO_EXPIRE
    )
