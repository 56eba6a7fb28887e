"""What operators need: the request id of each command, and lookups for stuck work.

- transactions.request_id: the X-Request-Id of the request that submitted the command,
  written at intake and logged by the drain that applies it, so one id follows a
  command from the API's log line to the drain's. Nullable: older rows, the seed.
- transactions_by_ledger: a ledger's transactions newest first (the admin search);
  transactions_rejected: its rejections, a partial index, so only rejected rows pay.
- Failed and pending callback deliveries of a ledger, in keyset pages by event id
  (uuid7, so time-ordered), use callback_deliveries_by_ledger (0005).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE transactions ADD COLUMN request_id text;
        CREATE INDEX transactions_by_ledger ON transactions (ledger_id, seq);
        CREATE INDEX transactions_rejected ON transactions (ledger_id, seq)
            WHERE status = 'rejected';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX transactions_rejected;
        DROP INDEX transactions_by_ledger;
        ALTER TABLE transactions DROP COLUMN request_id;
        """
    )
