"""The drain's queries use their own indexes even when the statistics are stale.

The benchmark found this: statistics gathered while nothing was pending made every
index with the bare predicate `status = 'pending'` look empty, and the planner used
the wrong one, scanning every pending row, so a backlog made each drain read 20 s.
This test reproduces those statistics, builds a backlog, and reads the plans.
"""

from __future__ import annotations

from sqlalchemy import text

from api import intake
from db import batch as store
from db import reads
from db.engine import connect
from ledger import DEFAULT_LEDGER_ID, CommandType
from tests.integration.helpers import bootstrap, drain_all, users_in_distinct_partitions
from tests.support import unique


def plan_nodes(statement: str, params: dict) -> list[dict]:
    with connect() as conn:
        (plan,) = conn.execute(text("EXPLAIN (FORMAT JSON) " + statement), params).scalar_one()
    nodes, todo = [], [plan["Plan"]]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(node.get("Plans", []))
    return nodes


def index_scans(nodes: list[dict]) -> dict[str, list[str]]:
    """Index name -> the index conditions it was used with."""
    found: dict[str, list[str]] = {}
    for node in nodes:
        if "Index Name" in node:
            found.setdefault(node["Index Name"], []).append(node.get("Index Cond", ""))
    return found


def test_pending_lookups_use_their_own_indexes_with_a_backlog_and_stale_statistics(rings):
    drain_all()
    with connect() as conn:
        conn.execute(text("ANALYZE transactions"))  # statistics: nothing is pending
    client = bootstrap()
    payer, payee = users_in_distinct_partitions(2)
    backlog = [
        intake.Submission(
            CommandType.TOPUP,
            unique("plan"),
            {"user_id": unique(), "asset": "GOLD_COINS", "amount": 1},
        )
        for _ in range(3000)
    ] + [
        intake.Submission(
            CommandType.TRANSFER,
            unique("plan"),
            {"from_user_id": payer, "to_user_id": payee, "asset": "GOLD_COINS", "amount": 1},
        )
    ]
    for start in range(0, len(backlog), 500):
        intake.submit_many(client, backlog[start : start + 500])
    try:
        scans = index_scans(plan_nodes(store.PENDING, {"p": 0, "n": 500}))
        assert "partition = 0" in " ".join(scans["transactions_pending_by_partition"])
        assert all("to_user_id" in cond for cond in scans["transactions_pending_by_payee"])
        assert all("user_id" in cond for cond in scans["transactions_pending_by_user"])
        assert set(scans) <= {
            "transactions_pending_by_partition",
            "transactions_pending_by_payee",
            "transactions_pending_by_user",
        }, scans
        nodes = plan_nodes(store.PENDING, {"p": 0, "n": 500})
        assert not any(node["Node Type"] == "Seq Scan" for node in nodes)
        # Each lookup stops at its first row (a Limit over its index scan): a busy
        # payee's backlog must not be read once per command of the batch.
        subplans = [n for n in nodes if n.get("Parent Relationship") == "SubPlan"]
        assert len(subplans) == 3 and all(n["Node Type"] == "Limit" for n in subplans)
    finally:
        drain_all()


def test_a_system_account_history_reads_each_shard_backwards_by_its_entries_index(rings):
    client = bootstrap()
    topups = [
        intake.Submission(
            CommandType.TOPUP,
            unique("plan"),
            {"user_id": unique(), "asset": "GOLD_COINS", "amount": 1},
        )
        for _ in range(1000)
    ]
    for start in range(0, len(topups), 500):
        intake.submit_many(client, topups[start : start + 500])
    drain_all()
    with connect() as conn:
        conn.execute(text("ANALYZE accounts"))
        conn.execute(text("ANALYZE ledger_entries"))
        shards = reads.system_shards(conn, DEFAULT_LEDGER_ID, "@treasury", None)
    params = {f"a{i}": shard for i, shard in enumerate(shards)}
    params.update(before=reads.NO_ENTRY_YET, n=51)
    nodes = plan_nodes(reads.system_history_statement(len(shards)), params)
    # One ordered scan per shard that stops after a page (a Limit over a backward index
    # scan), merged in order: never a shard's every entry read and sorted.
    entry_scans = [n for n in nodes if n.get("Relation Name") == "ledger_entries"]
    assert len(entry_scans) == len(shards) > 1
    for scan in entry_scans:
        assert scan["Node Type"] == "Index Scan", scan
        assert scan["Scan Direction"] == "Backward"
        # The shard's own index, or (for a shard that holds a large share of all
        # entries, as @treasury's do) the primary key filtered by account: either walks
        # back from the newest entry and stops after the page.
        assert scan["Index Name"] in ("ledger_entries_by_account", "ledger_entries_pkey"), scan
        conditions = scan.get("Index Cond", "") + scan.get("Filter", "")
        assert "account_id =" in conditions and "id <" in conditions, scan
    limits = [
        n for n in nodes if n["Node Type"] == "Limit" and n.get("Parent Relationship") == "Member"
    ]
    assert len(limits) == len(shards)
    assert any(n["Node Type"] == "Merge Append" for n in nodes)


def test_locking_a_batchs_wallets_probes_the_accounts_key_not_every_account(rings):
    client = bootstrap()
    users = [unique() for _ in range(2000)]
    topups = [
        intake.Submission(
            CommandType.TOPUP, unique("plan"), {"user_id": u, "asset": "GOLD_COINS", "amount": 1}
        )
        for u in users
    ]
    for start in range(0, len(topups), 500):
        intake.submit_many(client, topups[start : start + 500])
    drain_all()
    with connect() as conn:
        conn.execute(text("ANALYZE accounts"))
        gold = conn.execute(
            text("SELECT id FROM assets WHERE ledger_id = :l AND code = 'GOLD_COINS'"),
            {"l": DEFAULT_LEDGER_ID},
        ).scalar_one()
    nodes = plan_nodes(store.LOCK_WALLETS, {"owners": users[:3], "assets": [gold] * 3})
    scans = [n for n in nodes if n.get("Relation Name") == "accounts"]
    assert len(scans) == 1 and scans[0]["Node Type"] == "Index Scan", scans
    assert scans[0]["Index Name"] == "accounts_ledger_owner_asset_shard_key", scans
