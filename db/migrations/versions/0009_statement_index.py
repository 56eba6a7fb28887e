"""Entries by account and instant: statements and balances in time (docs/controls.md).

An entry's `created_at` is the instant its transaction was applied (the drain writes
the same instant to the transaction's `completed_at`, distinct and in ledger order per
account, db.batch.write). This index answers a statement window, the balance at an
instant (the cached balance minus the entries after it) and the drain's look-up of
each account's last instant, each as one range scan of one account's entries; the
amount is included so the sums are index-only scans.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-12
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX ledger_entries_by_account_time "
        "ON ledger_entries (account_id, created_at, id) INCLUDE (amount)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ledger_entries_by_account_time")
