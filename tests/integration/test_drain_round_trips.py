"""What one drain batch costs in round trips to PostgreSQL (worker.drain.apply_batch).

Under load a partition's latency is its batches' round trips, each a wait for a core on
a busy machine. A batch of plain commands is three: BEGIN with the lease and the pending
read, the wallets' lock, and the write with its COMMIT and the post-commit wake-up query
(db.uow, pipelined). Counted here at the driver: every statement the drain's connections
execute, and the BEGIN and COMMIT psycopg2 sends of its own on a transactional
connection (the autocommit pool's connections send none).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, text

from db.engine import ENGINES, connect
from db.lease import DRAIN_LOCK_NAMESPACE
from ledger import CommandType, TransactionStatus, partition_of
from tests.integration.helpers import balance, statuses, submit, users_in_distinct_partitions
from tests.support import unique
from worker.drain import apply_batch


@contextmanager
def round_trips() -> Iterator[list[str]]:
    """The round trips of the block, as the SQL (or BEGIN / COMMIT) each one sent."""
    sent: list[str] = []
    engines = ENGINES.get()

    def executed(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    def began(conn):
        sent.append("BEGIN")  # psycopg2 sends it before the transaction's first statement

    def committed(conn):
        sent.append("COMMIT")

    listeners = [
        (engines.transactional, "before_cursor_execute", executed),
        (engines.autocommit, "before_cursor_execute", executed),
        (engines.transactional, "begin", began),
        (engines.transactional, "commit", committed),
    ]
    for target, name, fn in listeners:
        event.listen(target, name, fn)
    try:
        yield sent
    finally:
        for target, name, fn in listeners:
            event.remove(target, name, fn)


def _users_in(partition: int, count: int) -> list[str]:
    found: list[str] = []
    while len(found) < count:
        user = unique("trips")
        if partition_of(user, 8) == partition:
            found.append(user)
    return found


def test_a_batch_of_plain_commands_is_three_round_trips(rings):
    partition = 5
    players = _users_in(partition, 3)
    for player in players:
        submit(CommandType.TOPUP, user_id=player, asset="GOLD_COINS", amount=50)
    apply_batch(partition, 500)  # the wallets and shards are known to this process now
    ids = [
        submit(CommandType.SPEND, user_id=player, asset="GOLD_COINS", amount=20)["id"]
        for player in players
    ]
    ids.append(submit(CommandType.TOPUP, user_id=players[0], asset="GOLD_COINS", amount=5)["id"])
    with round_trips() as sent:
        result = apply_batch(partition, 500)
    assert len(result.finished) == 4
    assert statuses(ids) == {(TransactionStatus.COMPLETED, None): 4}
    assert [balance(p) for p in players] == [35, 30, 30]
    assert len(sent) == 3, sent
    first, lock, last = sent
    assert first.startswith("BEGIN; SELECT pg_advisory_xact_lock")
    assert "FOR NO KEY UPDATE OF a" in lock
    assert "INSERT INTO ledger_entries" in last
    # The wake-up query runs after the COMMIT, in the same message.
    assert last.index("; COMMIT; ") < last.index("SELECT partition, wallet")


def test_an_idle_partition_costs_two_round_trips_and_keeps_no_lock(rings):
    partition = 6
    apply_batch(partition, 500)
    with round_trips() as sent:
        result = apply_batch(partition, 500)
    assert result.finished == []
    assert [s.split(";")[0] for s in sent] == ["BEGIN", "ROLLBACK"]
    with connect() as conn:  # the partition's lease went with the transaction
        assert conn.execute(
            text("SELECT pg_try_advisory_xact_lock(:ns, :p)"),
            {"ns": DRAIN_LOCK_NAMESPACE, "p": partition},
        ).scalar_one()


def test_a_transfer_still_wakes_the_partition_waiting_on_it(rings):
    """The wake-up query, sent after the COMMIT in the batch's last message, still finds
    the payee's partition, whose own command waited on the transfer."""
    payer, payee = users_in_distinct_partitions(2)
    submit(CommandType.TOPUP, user_id=payer, asset="GOLD_COINS", amount=10)
    submit(CommandType.TOPUP, user_id=payee, asset="GOLD_COINS", amount=1)
    apply_batch(partition_of(payer, 8), 500)
    apply_batch(partition_of(payee, 8), 500)  # both wallets exist: no wallet to create
    submit(CommandType.TRANSFER, from_user_id=payer, to_user_id=payee, asset="GOLD_COINS", amount=4)
    spend = submit(CommandType.SPEND, user_id=payee, asset="GOLD_COINS", amount=3)
    assert apply_batch(partition_of(payee, 8), 500).finished == []  # it waits
    with round_trips() as sent:
        paid = apply_batch(partition_of(payer, 8), 500)
    assert paid.ring == {partition_of(payee, 8)}
    assert len(sent) == 3, sent
    assert [str(f.id) for f in apply_batch(partition_of(payee, 8), 500).finished] == [spend["id"]]
    assert balance(payee) == 2
