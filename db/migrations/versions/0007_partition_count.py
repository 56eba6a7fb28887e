"""The partition count in the database: one row, changed only by `python -m stack
repartition N` (db.partitioning), read by the intake in the statement that stores a
command.

Empty until the seed (or the first repartition) writes it; until then every process
uses WALLET_PARTITIONS, as before this revision.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE wallet_partitioning (
            singleton boolean PRIMARY KEY DEFAULT true,
            partitions smallint NOT NULL,
            changed_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT wallet_partitioning_one_row CHECK (singleton),
            CONSTRAINT wallet_partitioning_positive CHECK (partitions >= 1)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE wallet_partitioning")
