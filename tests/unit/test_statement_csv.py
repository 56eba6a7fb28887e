"""A statement as CSV: a header, the opening row, one row per entry, the closing row."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta, timezone

from api.wallets import statement_csv
from db.reads import iso_exact


def body(**changes: object) -> dict:
    return {
        "user_id": "alice",
        "asset": "GOLD_COINS",
        "from_": None,
        "to": "2026-11-21T00:00:00.000000Z",
        "opening_balance": 0,
        "entries": [
            {
                "transaction_id": "t-1",
                "type": "topup",
                "amount": 500,
                "balance_after": 500,
                "at": "2026-11-20T10:00:00.000001Z",
            },
            {
                "transaction_id": "t-2",
                "type": "spend",
                "amount": -30,
                "balance_after": 470,
                "at": "2026-11-20T10:00:00.000002Z",
            },
        ],
        "closing_balance": 470,
        **changes,
    }


def test_the_rows_are_header_opening_entries_closing():
    text = statement_csv(body())
    assert text.splitlines()[0] == "transaction_id,type,amount,balance_after,at"
    assert list(csv.reader(io.StringIO(text)))[1:] == [
        ["", "opening_balance", "", "0", ""],
        ["t-1", "topup", "500", "500", "2026-11-20T10:00:00.000001Z"],
        ["t-2", "spend", "-30", "470", "2026-11-20T10:00:00.000002Z"],
        ["", "closing_balance", "", "470", "2026-11-21T00:00:00.000000Z"],
    ]


def test_an_empty_window_has_its_opening_and_closing_rows_only():
    text = statement_csv(body(from_="2026-11-20T00:00:00.000000Z", entries=[], closing_balance=0))
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1:] == [
        ["", "opening_balance", "", "0", "2026-11-20T00:00:00.000000Z"],
        ["", "closing_balance", "", "0", "2026-11-21T00:00:00.000000Z"],
    ]


def test_instants_are_shown_in_utc_to_the_microsecond():
    moment = datetime(2026, 11, 20, 12, 0, 0, 7, tzinfo=timezone(timedelta(hours=2)))
    assert iso_exact(moment) == "2026-11-20T10:00:00.000007Z"
    assert iso_exact(datetime(2026, 11, 20, tzinfo=UTC)) == "2026-11-20T00:00:00.000000Z"
