"""Each applied command has its own instant, and a wallet's instants rise in its ledger
order: within a batch, across batches, across partitions draining at once.

An entry's instant (`ledger_entries.created_at`) is its transaction's `completed_at`;
statements and `?at=` rest on these instants being distinct and in entry order per
account (db.batch.BATCH_INSTANT).
"""

from __future__ import annotations

import itertools
import random
import uuid

from sqlalchemy import text

from db.assets import catalog, create_asset
from db.engine import connect
from ledger import DEFAULT_LEDGER_ID, CommandType, partition_of
from tests.integration.helpers import Drainers, drain_all, submit, users_in_distinct_partitions
from tests.support import unique
from worker.drain import drain

GOLD = {"asset": "GOLD_COINS"}


def entries_of(owners: list[str]) -> dict[int, list[tuple[int, object, object]]]:
    """(entry id, entry instant, transaction completed_at) per account, in entry order:
    the owners' wallets and every system shard they posted with."""
    with connect() as conn:
        rows = conn.execute(
            text(
                "SELECT e.account_id, e.id, e.created_at, t.completed_at FROM ledger_entries e "
                "JOIN transactions t ON t.id = e.transaction_id "
                "WHERE e.account_id IN (SELECT id FROM accounts WHERE owner = ANY(:o)) "
                "OR e.transaction_id IN (SELECT e2.transaction_id FROM ledger_entries e2 "
                "  JOIN accounts a ON a.id = e2.account_id WHERE a.owner = ANY(:o)) "
                "ORDER BY e.account_id, e.id"
            ),
            {"o": owners},
        ).all()
    found: dict[int, list[tuple[int, object, object]]] = {}
    for row in rows:
        found.setdefault(row.account_id, []).append((row.id, row.created_at, row.completed_at))
    return found


def assert_rising_per_account(owners: list[str]) -> int:
    """Every account's instants strictly rise in entry order, and each entry's instant
    is its transaction's completed_at. Returns the number of entries checked."""
    checked = 0
    for account, entries in entries_of(owners).items():
        instants = [instant for _, instant, _ in entries]
        assert all(a < b for a, b in itertools.pairwise(instants)), (
            account,
            instants,
        )
        assert all(instant == completed for _, instant, completed in entries)
        checked += len(entries)
    return checked


def completed_at(ids: list[str]) -> list[object]:
    with connect() as conn:
        rows = conn.execute(
            text(
                "SELECT completed_at FROM transactions WHERE id = ANY(CAST(:ids AS uuid[])) "
                "ORDER BY seq"
            ),
            {"ids": ids},
        ).scalars()
        return list(rows)


def test_commands_applied_in_one_batch_have_distinct_instants_in_acceptance_order(rings):
    drain_all()
    user = unique()
    ids = [submit(CommandType.TOPUP, user_id=user, amount=100, **GOLD)["id"]]
    ids += [submit(CommandType.SPEND, user_id=user, amount=10, **GOLD)["id"] for _ in range(3)]
    ids.append(submit(CommandType.SPEND, user_id=user, amount=1000, **GOLD)["id"])  # rejected
    ids.append(submit(CommandType.BONUS, user_id=user, amount=5, **GOLD)["id"])
    result = drain(partition_of(user, 8), batch_size=100)
    assert len(result.finished) == len(ids)  # one batch applied them all
    instants = completed_at(ids)
    assert all(a < b for a, b in itertools.pairwise(instants)), instants
    assert assert_rising_per_account([user]) == 2 * 5  # the rejected spend has no entries


def test_a_wallet_written_by_two_partitions_at_once_keeps_its_instants_in_order(rings):
    """Transfers both ways between players of different partitions, each player's own
    top-ups and spends, drained by competing threads: every wallet and system shard
    sees its instants rise with its entries (a wallet's rows are locked by the batch
    that writes them; a shard is written by its partition's drain only)."""
    drain_all()
    players = users_in_distinct_partitions(4)
    for player in players:
        submit(CommandType.TOPUP, user_id=player, amount=10_000, **GOLD)
    drain_all()
    rng = random.Random(15)
    with Drainers(set(range(8)), threads=3):
        for _ in range(150):
            payer, payee = rng.sample(players, 2)
            kind = rng.choice(["transfer", "transfer", "topup", "spend"])
            if kind == "transfer":
                submit(
                    CommandType.TRANSFER,
                    from_user_id=payer,
                    to_user_id=payee,
                    amount=rng.randint(1, 50),
                    **GOLD,
                )
            elif kind == "topup":
                submit(CommandType.TOPUP, user_id=payer, amount=rng.randint(1, 50), **GOLD)
            else:
                submit(CommandType.SPEND, user_id=payer, amount=rng.randint(1, 50), **GOLD)
    assert assert_rising_per_account(players) > 300


def test_an_instant_follows_the_wallets_last_one_even_if_the_clock_is_behind_it(rings):
    """A clock that steps back (a failover to a server whose clock is behind): the next
    command on the wallet still comes after the wallet's last instant."""
    # An asset of its own: its system shards, which run an hour ahead after this test,
    # are no other test's.
    code = "T" + uuid.uuid4().hex[:12].upper()
    with connect() as conn:
        create_asset(conn, DEFAULT_LEDGER_ID, code, code)
    catalog.clear()
    asset = {"asset": code}
    user = unique()
    submit(CommandType.TOPUP, user_id=user, amount=10, **asset)
    drain_all()
    ahead = submit(CommandType.TOPUP, user_id=user, amount=5, **asset)["id"]
    # Applied by hand, as a drain would, but at an instant an hour ahead of the clock.
    with connect() as conn:
        user_account, treasury = (
            conn.execute(
                text(
                    "SELECT a.id FROM accounts a JOIN assets s ON s.id = a.asset_id "
                    "WHERE s.code = :c AND a.owner = :o AND a.shard = :s"
                ),
                {"c": code, "o": owner, "s": shard},
            ).scalar_one()
            for owner, shard in ((user, 0), ("@treasury", partition_of(user, 8)))
        )
        conn.execute(
            text(
                "INSERT INTO ledger_entries (transaction_id, account_id, amount, created_at) "
                "VALUES (:t, :u, 5, now() + interval '1 hour'), "
                "(:t, :s, -5, now() + interval '1 hour'); "
                "UPDATE accounts SET balance = balance + 5 WHERE id = :u; "
                "UPDATE accounts SET balance = balance - 5 WHERE id = :s; "
                "UPDATE transactions SET status = 'completed', balance_after = 15, "
                "completed_at = now() + interval '1 hour' WHERE id = :t"
            ),
            {"t": uuid.UUID(ahead), "u": user_account, "s": treasury},
        )
    after = submit(CommandType.SPEND, user_id=user, amount=1, **asset)["id"]
    drain_all()
    assert completed_at([ahead, after])[0] < completed_at([ahead, after])[1]
    assert assert_rising_per_account([user]) >= 6
