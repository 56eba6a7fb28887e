"""Cross-partition order, overflow-proof system balances, one posting per account.

- Partial indexes on pending commands by wallet (as subject and as payee), so a drain
  can ask cheaply whether another partition holds an earlier command for its wallets.
- accounts.balance becomes numeric: a system account shard sums everything it ever
  issued and could pass 2^63; user balances stay capped at 2^53-1 by the ledger.
- A transaction posts at most once to an account: the database itself refuses a
  second application of the same transaction's entries.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE INDEX transactions_pending_by_user ON transactions (user_id, seq)
            WHERE status = 'pending';
        CREATE INDEX transactions_pending_by_payee ON transactions (to_user_id, seq)
            WHERE status = 'pending' AND to_user_id IS NOT NULL;
        ALTER TABLE accounts ALTER COLUMN balance TYPE numeric(38, 0);
        DROP INDEX ledger_entries_by_transaction;
        ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_transaction_account_key
            UNIQUE (transaction_id, account_id);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_transaction_account_key;
        CREATE INDEX ledger_entries_by_transaction ON ledger_entries (transaction_id);
        ALTER TABLE accounts ALTER COLUMN balance TYPE bigint;
        DROP INDEX transactions_pending_by_payee;
        DROP INDEX transactions_pending_by_user;
        """
    )
