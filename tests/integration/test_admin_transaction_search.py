"""GET /v1/admin/transactions: every filter, keyset pages, admin scope only, and plans
that stay index scans on a big table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import event, text

from db import admin_reads
from db.clients import BOOTSTRAP_CLIENT_ID, create_client
from db.engine import connect, get_engine
from ledger import DEFAULT_LEDGER_ID
from tests.integration.conftest import ADMIN, post
from tests.integration.helpers import drain_all
from tests.integration.test_query_plans import index_scans
from tests.support import unique

SEARCH = "/v1/admin/transactions"


def search(client, **params):
    response = client.get(SEARCH, query_string=params, headers=ADMIN)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def ids(page):
    return [item["id"] for item in page["items"]]


def submitted(client, kind, body):
    response = post(client, f"/v1/transactions/{kind}", body, unique("search"))
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def test_each_filter_narrows_the_search_newest_first(client):
    alice, bob = unique(), unique()
    topup = submitted(client, "topup", {"user_id": alice, "asset": "GOLD_COINS", "amount": 9})
    diamonds = submitted(client, "topup", {"user_id": alice, "asset": "DIAMONDS", "amount": 2})
    refused = submitted(client, "spend", {"user_id": bob, "asset": "GOLD_COINS", "amount": 5})
    gift = submitted(
        client,
        "transfer",
        {"from_user_id": alice, "to_user_id": bob, "asset": "GOLD_COINS", "amount": 1},
    )
    drain_all()
    waiting = submitted(client, "bonus", {"user_id": bob, "asset": "GOLD_COINS", "amount": 1})

    assert ids(search(client, user_id=alice)) == [gift, diamonds, topup]
    assert ids(search(client, user_id=bob)) == [waiting, gift, refused]  # payee too
    assert ids(search(client, user_id=alice, asset="DIAMONDS")) == [diamonds]
    assert ids(search(client, user_id=bob, status="rejected")) == [refused]
    assert ids(search(client, user_id=bob, status="pending")) == [waiting]
    assert ids(search(client, user_id=alice, type="transfer")) == [gift]
    assert search(client, status="rejected")["items"][0]["id"] == refused
    assert search(client, status="pending", limit=200)["items"][0]["id"] == waiting
    assert {i["status"] for i in search(client, status="completed", limit=200)["items"]} == {
        "completed"
    }

    with connect() as conn:  # spread them over time, as if accepted days apart
        # ...and before everything else in the table: the search turns a time window
        # into a seq range, relying on seq following created_at (within a minute), as
        # the intake makes it. Moving only created_at back would break that for rows
        # other tests wrote in between.
        first = conn.execute(text("SELECT min(seq) FROM transactions")).scalar_one()
        for days, tx in ((3, topup), (2, diamonds), (1, refused)):
            conn.execute(
                text(
                    "UPDATE transactions SET created_at = now() - make_interval(days => :d), "
                    "seq = :seq WHERE id = :id"
                ),
                {"d": days, "id": tx, "seq": first - 10 * days},
            )
    now = datetime.now(UTC)
    window = {
        "created_from": (now - timedelta(days=2, hours=1)).isoformat(),
        "created_to": (now - timedelta(hours=12)).isoformat(),
    }
    assert ids(search(client, **window, limit=200)) == [refused, diamonds]
    assert ids(search(client, user_id=alice, **window)) == [diamonds]
    drain_all()


def test_pages_follow_each_other_without_gaps_or_repeats(client):
    user = unique()
    made = [
        submitted(client, "topup", {"user_id": user, "asset": "GOLD_COINS", "amount": n})
        for n in range(1, 8)
    ]
    seen, cursor = [], None
    while True:
        page = search(client, user_id=user, limit=3, **({"cursor": cursor} if cursor else {}))
        seen += ids(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]
    everything = search(client, limit=2)
    assert len(everything["items"]) == 2 and everything["next_cursor"]
    following = search(client, limit=2, cursor=everything["next_cursor"])
    assert not set(ids(following)) & set(ids(everything))
    drain_all()


def test_only_admin_keys_search_and_bad_filters_are_422(client):
    with connect() as conn:
        reader = create_client(conn, DEFAULT_LEDGER_ID, "reader", ["read", "submit"], []).api_key
    forbidden = client.get(SEARCH, headers={"Authorization": f"Bearer {reader}"})
    assert forbidden.status_code == 403 and forbidden.get_json()["code"] == "forbidden"
    assert client.get(SEARCH).status_code == 401
    for bad in (
        {"status": "lost"},
        {"type": "refund"},
        {"limit": 0},
        {"limit": 201},
        {"created_from": "yesterday"},
        {"created_from": "2026-11-20T10:00:00"},  # no offset: which day is that?
        {"created_from": "2026-11-21T00:00:00Z", "created_to": "2026-11-20T00:00:00Z"},
        {"cursor": "not-a-cursor"},
    ):
        response = client.get(SEARCH, query_string=bad, headers=ADMIN)
        assert response.status_code == 422, (bad, response.get_json())
        assert response.get_json()["code"] == "validation_error", bad
    unknown = client.get(SEARCH, query_string={"asset": "NOPE"}, headers=ADMIN)
    assert unknown.status_code == 422 and unknown.get_json()["code"] == "unknown_asset"


def test_the_search_plans_walk_indexes_on_a_big_table(database):
    """40,000 transactions (in a transaction rolled back at the end), analysed: each
    filter's page is an index scan that stops after the page, never a table scan."""
    now = datetime.now(UTC)
    where = admin_reads.TransactionFilter
    cases = (
        (where(), ("transactions_by_ledger", "transactions_seq_key")),
        (where(status="rejected"), ("transactions_rejected",)),
        (where(status="pending"), ("transactions_pending_by_partition",)),
        (where(user_id="bulk-7"), ("transactions_by_user",)),
        (where(type="spend"), ("transactions_by_ledger", "transactions_seq_key")),
        (
            where(created_from=now - timedelta(hours=10), created_to=now - timedelta(hours=9)),
            ("transactions_by_ledger", "transactions_seq_key"),
        ),
    )
    with get_engine().connect() as conn, conn.begin() as outer:
        conn.execute(
            text(
                "INSERT INTO transactions (id, ledger_id, client_id, idempotency_key, "
                "fingerprint, type, status, partition, user_id, asset_id, amount, created_at) "
                "SELECT gen_random_uuid(), 1, :client, 'plan-' || g, 'x', "
                "CASE WHEN g % 3 = 0 THEN 'spend' ELSE 'topup' END, "
                "CASE WHEN g % 499 = 0 THEN 'rejected' ELSE 'completed' END, g % 8, "
                "'bulk-' || (g % 2000), (SELECT min(id) FROM assets WHERE ledger_id = 1), 1, "
                "now() - make_interval(secs => (40000 - g) * 2.0) "
                "FROM generate_series(1, 40000) AS g"
            ),
            {"client": BOOTSTRAP_CLIENT_ID},
        )
        conn.execute(text("ANALYZE transactions"))
        for filters, index in cases:  # index: the acceptable ones
            statement, parameters = _captured(conn, filters)
            (plan,) = conn.exec_driver_sql(
                "EXPLAIN (FORMAT JSON) " + statement, parameters
            ).scalar_one()
            nodes, todo = [], [plan["Plan"]]
            while todo:
                node = todo.pop()
                nodes.append(node)
                todo.extend(node.get("Plans", []))
            # With one ledger in the table, walking seq backwards is as good as walking
            # the ledger's own index: either stops after the page.
            used = index_scans(nodes)
            assert any(i in used for i in index), (filters, used)
            assert not any(n["Node Type"] == "Seq Scan" for n in nodes), filters
        outer.rollback()


def _captured(conn, filters):
    """The page statement the search runs for `filters` (and its parameters)."""
    captured = []

    def capture(conn_, cursor, statement, parameters, context, executemany):
        if "FROM transactions t" in statement:
            captured.append((statement, parameters))

    event.listen(conn, "before_cursor_execute", capture)
    try:
        admin_reads.search_transactions(conn, DEFAULT_LEDGER_ID, filters, 50, None)
    finally:
        event.remove(conn, "before_cursor_execute", capture)
    return captured[0]
