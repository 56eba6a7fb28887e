"""Property: any sequence of commands of every type, expiries, freezes and limits among
them, on assets with and without rules, keeps every invariant."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from hypothesis import event, given, settings
from hypothesis import strategies as st

from ledger import (
    EXPIRED,
    SPEND_WINDOW,
    AccountRef,
    Applied,
    AssetRules,
    Bonus,
    Book,
    Capture,
    Expiry,
    Freeze,
    Frozen,
    Hold,
    HoldStatus,
    RejectionCode,
    Release,
    Reverse,
    Spend,
    TopUp,
    Transfer,
    Unfreeze,
    check_balanced,
    due_expiries,
    expiring,
)
from ledger.controls import lots_total, usable

T0 = datetime(2026, 11, 20, tzinfo=UTC)
USERS = ["alice", "bob"]
PLAIN, RULED, STRICT = "GOLD_COINS", "DIAMONDS", "GEMS"  # no rules, drawn rules, all rules
ASSETS = [PLAIN, RULED, STRICT]
amounts = st.integers(min_value=1, max_value=200)
small = st.integers(min_value=1, max_value=60)  # debits: more of them find the funds
users = st.sampled_from(USERS)
assets = st.sampled_from(ASSETS)
refs = st.integers(min_value=0, max_value=8)  # how far back the referenced command is
settings_ = st.none() | st.integers(min_value=1, max_value=600)


def rule_sets():
    strict = st.builds(
        AssetRules,
        st.integers(100, 600),
        st.integers(50, 400),
        st.integers(5, 120),
    )
    return st.fixed_dictionaries(
        {RULED: st.builds(AssetRules, settings_, settings_, settings_), STRICT: strict}
    )


def commands():
    credit = st.builds(TopUp, users, assets, amounts) | st.builds(Bonus, users, assets, amounts)
    return st.one_of(
        credit,
        credit,
        credit,
        st.builds(Spend, users, assets, small),
        st.builds(Transfer, users, users, assets, small),
        st.tuples(st.just("hold"), users, assets, small, st.integers(1, 200)),
        st.tuples(st.just("hold"), users, assets, small, st.integers(1, 200)),
        st.tuples(st.just("capture"), refs, st.none() | small),
        st.tuples(st.just("capture"), refs, st.none() | small),
        st.tuples(st.just("release"), refs),
        st.tuples(st.just("reverse"), refs),
        st.tuples(st.just("expiry"), users, assets, st.integers(0, 5)),
        st.tuples(st.just("freeze"), users, st.integers(0, 5)),  # mostly a no-op tick
        # Boundary seekers: a credit to one under, exactly at, one over the cap; a spend
        # of one under, exactly, one over what the 24-hour limit leaves.
        st.tuples(st.just("fill"), users, assets, st.integers(-1, 1)),
        st.tuples(st.just("drain"), users, assets, st.integers(-1, 1)),
        st.tuples(st.just("tick"), st.integers(1, 60)),
        st.tuples(st.just("hours"), st.integers(1, 30)),
    )


OWN_DEBITS = (Spend, Transfer, Hold, Capture)


@settings(max_examples=300, deadline=None)
@given(rule_sets(), st.lists(commands(), min_size=30, max_size=80))
def test_any_sequence_with_controls_keeps_every_invariant(rules, script):
    book = Book(rules=dict(rules))
    now = T0
    ids: list[str] = []
    by_account: dict[AccountRef, int] = defaultdict(int)
    per_asset: dict[str, int] = defaultdict(int)
    own_debits: dict[AccountRef, list[tuple[datetime, int]]] = defaultdict(list)
    frozen: dict[str, Frozen] = {}
    fresh_credit: dict[str, datetime] = {}  # the latest credit from a system account

    def spent(account):
        return sum(n for at, n in own_debits[account] if at > now - SPEND_WINDOW)

    for step, item in enumerate(script):
        tx_id = f"tx{step}"
        command = build(item, book, now, ids, by_account, spent)
        if command is None:
            if item[0] == "tick":
                now += timedelta(seconds=item[1])
            elif item[0] == "hours":
                now += timedelta(hours=item[1])
            continue
        reach = _usable_before(book, command, now)
        due = _due_before(book, command, now)
        outcome = book.execute(tx_id, command, now)
        ids.append(tx_id)
        if isinstance(command, Freeze) and command.user_id not in frozen:
            frozen[command.user_id] = Frozen(command.reason, now)
        if isinstance(command, Unfreeze):
            frozen.pop(command.user_id, None)
        event(f"{command.type} {getattr(outcome, 'code', 'applied')}")
        if not isinstance(outcome, Applied):
            check_rejection(book, command, outcome.code, by_account, spent, frozen)
            continue
        if isinstance(command, TopUp | Bonus | Reverse):
            fresh_credit[_asset(book, command)] = now
        if isinstance(command, Expiry):
            # An expiry takes only credit whose instant had come when it was accepted.
            assert -outcome.postings[0].amount <= due
        if outcome.postings:
            check_balanced(outcome.postings)
        for posting in outcome.postings:
            by_account[posting.account] += posting.amount
            per_asset[posting.account.asset] += posting.amount
        if isinstance(command, OWN_DEBITS):
            debtor = _debtor(book, command)
            # No own debit of a frozen player is ever applied.
            assert debtor.owner not in frozen
            # A spend, transfer or hold never reaches credit expired at its acceptance.
            if reach is not None:
                assert _amount(command, outcome) <= reach
            if not isinstance(command, Hold):
                own_debits[debtor].append((now, _amount(command, outcome)))
                limit = _rules(book, debtor.asset).spend_limit_24h
                if limit is not None:
                    window = [n for at, n in own_debits[debtor] if at > now - SPEND_WINDOW]
                    assert sum(window) <= limit
        check_invariants(book, by_account, per_asset, frozen, fresh_credit)

    # When every credit's lifetime and every hold has run out, a sweep leaves nothing
    # in any wallet of an asset with a lifetime: no credit escapes its expiry.
    now += timedelta(days=3)
    for hold in list(book.holds.values()):
        book.expire(hold.id)
    for account, wallet in list(book.wallets.items()):
        for lot in due_expiries(wallet.lots, now):
            outcome = book.execute(
                f"sweep-{account}-{lot}", Expiry(account.owner, account.asset, lot.expires_at), now
            )
            assert isinstance(outcome, Applied)
            for posting in outcome.postings:
                by_account[posting.account] += posting.amount
                per_asset[posting.account.asset] += posting.amount
        if _rules(book, account.asset).credit_lifetime is not None:
            assert wallet.balance == 0
    check_invariants(book, by_account, per_asset, frozen, fresh_credit)


def build(item, book, now, ids, by_account, spent):
    """The command a script item stands for; None for a clock tick."""
    if not isinstance(item, tuple):
        return item
    kind, *args = item
    if kind in ("fill", "drain"):
        user, asset, delta = args
        rules, account = _rules(book, asset), AccountRef(user, asset)
        if kind == "fill":
            room = (rules.max_balance or 100) - by_account[account]
            return TopUp(user, asset, max(room + delta, 1))
        room = (rules.spend_limit_24h or 10) - spent(account)
        return Spend(user, asset, max(room + delta, 1))
    if kind in ("tick", "hours"):
        return None
    if kind == "freeze":
        user, pick = args
        return (
            Freeze(user, f"reason at {now}") if pick == 0 else Unfreeze(user) if pick == 1 else None
        )
    if kind == "hold":
        return Hold(args[0], args[1], args[2], now + timedelta(seconds=args[3]))
    if kind == "expiry":
        user, asset, pick = args
        due = due_expiries(book.wallet(AccountRef(user, asset)).lots, now)
        # A due lot's instant, or (no lot due, or pick past the due ones) about the clock:
        # pick 5 asks for credit that is not due yet.
        if pick < len(due):
            cutoff = due[pick].expires_at
        else:
            cutoff = now + timedelta(seconds=60 if pick == 5 else -pick)
        return Expiry(user, asset, cutoff)
    target = ids[-1 - args[0] % len(ids)] if ids else "none"
    if kind == "capture":
        return Capture(target, args[1])
    if kind == "release":
        return Release(target)
    return Reverse(target, "property")


def check_rejection(book, command, code, by_account, spent, frozen):
    """A control never refuses what its rule allows."""
    if code is RejectionCode.WALLET_FROZEN:
        assert _debtor(book, command).owner in frozen
    if code is RejectionCode.SPEND_LIMIT_EXCEEDED:
        debtor = _debtor(book, command)
        amount = command.amount
        if isinstance(command, Capture) and amount is None:
            amount = book.holds[command.hold_id].amount
        assert spent(debtor) + amount > _rules(book, debtor.asset).spend_limit_24h
    if code is RejectionCode.BALANCE_LIMIT_EXCEEDED and isinstance(command, TopUp | Bonus):
        cap = _rules(book, command.asset).balance_cap
        assert by_account[command.subject] + command.amount > cap
    if code is RejectionCode.BALANCE_LIMIT_EXCEEDED and isinstance(command, Transfer):
        cap = _rules(book, command.asset).balance_cap
        assert by_account[command.payee] + command.amount > cap


def check_invariants(book, by_account, per_asset, frozen, fresh_credit):
    assert all(total == 0 for total in per_asset.values())
    # A freeze keeps its first reason and instant until the unfreeze.
    assert book.frozen == frozen
    for account, lots in _all_lots(book):
        lifetime = _rules(book, account.asset).credit_lifetime
        for lot in lots:
            # No credit outlives its lifetime from the credit that created it: passing
            # it between players does not make it young again.
            assert lot.expires_at <= fresh_credit[account.asset] + timedelta(seconds=lifetime)
    held = defaultdict(int)
    held_lots = defaultdict(int)
    for hold in book.holds.values():
        if hold.status is HoldStatus.ACTIVE:
            held[hold.account] += hold.amount
            held_lots[hold.account] += lots_total(hold.lots)
            if _rules(book, hold.account.asset).credit_lifetime is not None:
                assert lots_total(hold.lots) == hold.amount
    for account, wallet in book.wallets.items():
        rules = _rules(book, account.asset)
        assert wallet.balance == by_account[account]
        assert wallet.held == held[account]
        assert wallet.available >= 0
        if rules.max_balance is not None:
            assert wallet.balance <= rules.max_balance
        if rules.credit_lifetime is None:
            assert wallet.lots == ()
        else:
            # The lots always sum to the balance: the wallet's free ones to what is
            # available, the active holds' to what is held.
            assert lots_total(wallet.lots) == wallet.available
            assert lots_total(wallet.lots) + held_lots[account] == wallet.balance
            assert all(lot.amount > 0 for lot in wallet.lots)
            instants = [lot.expires_at for lot in wallet.lots]
            assert instants == sorted(instants) and len(set(instants)) == len(instants)
            view = expiring(wallet.lots)
            assert list(view) == list(wallet.lots[:10])
        if rules.spend_limit_24h is None:
            assert wallet.debits == ()
    for asset in ASSETS:
        assert by_account[AccountRef(EXPIRED, asset)] >= 0


def _rules(book, asset):
    return book.rules.get(asset, AssetRules())


def _all_lots(book):
    for account, wallet in book.wallets.items():
        yield account, wallet.lots
    for hold in book.holds.values():
        if hold.status is HoldStatus.ACTIVE:
            yield hold.account, hold.lots


def _asset(book, command):
    if isinstance(command, Reverse):
        return book.records[command.transaction_id].subject.asset
    return command.asset


def _due_before(book, command, now):
    if not isinstance(command, Expiry):
        return None
    return lots_total(due_expiries(book.wallet(command.subject).lots, now))


def _debtor(book, command):
    if isinstance(command, Capture):
        return book.holds[command.hold_id].account
    return command.subject


def _amount(command, outcome):
    if isinstance(command, Capture):
        return outcome.postings[1].amount
    return command.amount


def _usable_before(book, command, now):
    """What of the debtor's credit a spend, transfer or hold may reach at `now`, for an
    asset with a lifetime; None otherwise."""
    if not isinstance(command, Spend | Transfer | Hold):
        return None
    if _rules(book, command.asset).credit_lifetime is None:
        return None
    return usable(book.wallet(command.subject).lots, now)
