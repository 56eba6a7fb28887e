"""Every primary, unique and foreign key of the schema is reviewed for Citus.

Write scale past one PostgreSQL means distributing the tables by `partition` (Citus,
docs/scale-out.md), where every unique and foreign key of a distributed table must
include the distribution column. The keys the migrated database has are compared with
the list in docs/scale-out.md ("The Citus guard"), which says for each what it becomes
under Citus: a new key, or a changed one, fails here until it is reviewed and listed.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import text

from db.engine import connect

DOC = Path(__file__).resolve().parents[2] / "docs" / "scale-out.md"
KINDS = {"p": "primary key", "u": "unique", "f": "foreign key"}
# What each documented key becomes under Citus (the table's last column starts with one).
PLANS = ("kept", "gains partition", "own table by key", "dropped", "local table")


def schema_keys() -> set[tuple[str, str, str, str]]:
    """(table, constraint, kind, columns [-> referenced table(columns)]) from pg_constraint."""
    with connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.conrelid::regclass::text AS tbl, c.conname, c.contype, "
                "  (SELECT string_agg(a.attname, ', ' ORDER BY k.n) "
                "   FROM unnest(c.conkey) WITH ORDINALITY AS k(att, n) "
                "   JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.att) AS cols, "
                "  c.confrelid::regclass::text AS ref, "
                "  (SELECT string_agg(a.attname, ', ' ORDER BY k.n) "
                "   FROM unnest(c.confkey) WITH ORDINALITY AS k(att, n) "
                "   JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.att) "
                "   AS ref_cols "
                "FROM pg_constraint c JOIN pg_namespace s ON s.oid = c.connamespace "
                "WHERE s.nspname = current_schema() AND c.contype IN ('p', 'u', 'f')"
            )
        ).all()
    keys = set()
    for row in rows:
        columns = row.cols + (f" -> {row.ref}({row.ref_cols})" if row.contype == "f" else "")
        keys.add((row.tbl, row.conname, KINDS[row.contype], columns))
    return keys


def documented_keys() -> dict[tuple[str, str, str, str], str]:
    """The rows of the table between the citus-keys markers of docs/scale-out.md."""
    section = DOC.read_text().split("<!-- citus-keys -->")[1]
    found = {}
    for line in section.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or cells[0] in ("table", "") or set(cells[0]) <= {"-"}:
            continue
        found[tuple(cells[:4])] = cells[4]
    return found  # type: ignore[return-value]


def test_every_key_of_the_schema_is_listed_with_its_citus_plan():
    actual = schema_keys()
    listed = documented_keys()
    assert actual, "no keys found: the query is wrong"
    unlisted = sorted(actual - set(listed))
    gone = sorted(set(listed) - actual)
    assert not unlisted, (
        "keys not reviewed for Citus; add each to docs/scale-out.md (The Citus guard) with "
        f"what it becomes when tables are distributed by partition: {unlisted}"
    )
    assert not gone, f"listed in docs/scale-out.md but not in the schema: {gone}"


def test_every_listed_key_says_what_it_becomes():
    for key, plan in documented_keys().items():
        assert plan.startswith(PLANS), (key, plan)
        # A key kept on a table distributed by partition must include partition.
        if plan.startswith("gains partition"):
            assert re.search(r"\bpartition\b", plan), (key, plan)
