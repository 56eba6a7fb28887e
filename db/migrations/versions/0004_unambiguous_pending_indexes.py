"""Each partial index on pending commands usable only by the lookup it exists for.

Found by the benchmark: with statistics gathered while nothing was pending, the planner
thinks every index whose predicate is just `status = 'pending'` is empty, and chose
transactions_pending_by_user to answer the drain's `partition = p` read and the
`to_user_id = x` lookups, scanning every pending row. Under a backlog of 100,000
commands each drain read took 20 s. A predicate that also requires the indexed column
to be non-null is implied only by a condition on that column (`user_id = x`,
`partition = p`, `partition >= 0`), so no other query can pick the index, whatever
the statistics say.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        DROP INDEX transactions_pending_by_user;
        CREATE INDEX transactions_pending_by_user ON transactions (user_id, seq)
            WHERE status = 'pending' AND user_id IS NOT NULL;
        DROP INDEX transactions_pending_by_partition;
        CREATE INDEX transactions_pending_by_partition ON transactions (partition, seq)
            WHERE status = 'pending' AND partition IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX transactions_pending_by_partition;
        CREATE INDEX transactions_pending_by_partition ON transactions (partition, seq)
            WHERE status = 'pending';
        DROP INDEX transactions_pending_by_user;
        CREATE INDEX transactions_pending_by_user ON transactions (user_id, seq)
            WHERE status = 'pending';
        """
    )
