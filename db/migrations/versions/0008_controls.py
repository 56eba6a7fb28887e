"""Player and currency controls: asset rules, lots, the spend window, freezes.

- `assets`: `max_balance`, `spend_limit_24h`, `credit_lifetime_s`, each NULL (no rule)
  or 1 .. 2^53-1.
- `accounts.lots` (jsonb, `[{"amount", "expires_at"}]`, soonest first): a wallet's free
  lots, only for an asset with a credit lifetime; NULL otherwise (and for a balance
  credited before the lifetime). When not NULL they sum to `balance - held`
  (`wallet_lots_total`, an immutable function, in a CHECK).
- `accounts.lots_expire_at`: the soonest dated free lot's instant, with a partial index:
  what the expiry sweeper looks for.
- `accounts.recent_debits` (jsonb, `[{"accepted_at", "amount"}]`): the player's own
  debits in the last 24 hours, only for an asset with a spend limit.
- `transactions.lots`: the lots an active hold reserved (they sum to its amount).
- `transactions.asset_id` may be NULL for a freeze or unfreeze (they concern a player,
  not one asset), and only for them.
- `frozen_players`: one row per frozen player of a ledger.
- The system account `@expired` (the sink of expired credits) gets its shards in every
  ledger's every asset, like the other system accounts.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-20
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

MAX = 2**53 - 1


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE assets
            ADD COLUMN max_balance bigint,
            ADD COLUMN spend_limit_24h bigint,
            ADD COLUMN credit_lifetime_s bigint,
            ADD CONSTRAINT assets_max_balance_range
                CHECK (max_balance IS NULL OR max_balance BETWEEN 1 AND {MAX}),
            ADD CONSTRAINT assets_spend_limit_24h_range
                CHECK (spend_limit_24h IS NULL OR spend_limit_24h BETWEEN 1 AND {MAX}),
            ADD CONSTRAINT assets_credit_lifetime_s_range
                CHECK (credit_lifetime_s IS NULL OR credit_lifetime_s BETWEEN 1 AND {MAX});

        CREATE FUNCTION wallet_lots_total(lots jsonb) RETURNS numeric
            LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
            AS $$ SELECT coalesce(sum(CAST(l ->> 'amount' AS numeric)), 0)
                  FROM jsonb_array_elements(lots) AS l $$;

        ALTER TABLE accounts
            ADD COLUMN lots jsonb,
            ADD COLUMN lots_expire_at timestamptz,
            ADD COLUMN recent_debits jsonb,
            ADD CONSTRAINT accounts_lots_cover_available
                CHECK (lots IS NULL OR wallet_lots_total(lots) = balance - held);
        CREATE INDEX accounts_lots_expiring ON accounts (lots_expire_at)
            WHERE lots_expire_at IS NOT NULL;

        ALTER TABLE transactions
            ADD COLUMN lots jsonb,
            ADD CONSTRAINT transactions_hold_lots_cover_amount
                CHECK (lots IS NULL OR hold_status IS DISTINCT FROM 'active'
                       OR wallet_lots_total(lots) = amount);
        ALTER TABLE transactions DROP CONSTRAINT transactions_type_known;
        ALTER TABLE transactions ADD CONSTRAINT transactions_type_known CHECK (type IN
            ('topup', 'bonus', 'spend', 'transfer', 'hold', 'capture', 'release', 'reverse',
             'expiry', 'freeze', 'unfreeze'));
        ALTER TABLE transactions ALTER COLUMN asset_id DROP NOT NULL;
        ALTER TABLE transactions ADD CONSTRAINT transactions_asset_known
            CHECK (asset_id IS NOT NULL OR type IN ('freeze', 'unfreeze'));

        CREATE TABLE frozen_players (
            ledger_id integer NOT NULL REFERENCES ledgers (id),
            user_id text NOT NULL,
            reason text NOT NULL,
            since timestamptz NOT NULL,
            freeze_id uuid NOT NULL,
            PRIMARY KEY (ledger_id, user_id),
            CONSTRAINT frozen_players_freeze_fkey FOREIGN KEY (ledger_id, freeze_id)
                REFERENCES transactions (ledger_id, id)
        );

        -- @expired's shards for the assets that exist (the drain creates missing shards
        -- too, and the seed creates them for the default ledger).
        INSERT INTO accounts (ledger_id, owner, asset_id, shard)
        SELECT a.ledger_id, '@expired', a.id, s.shard
        FROM assets a CROSS JOIN generate_series(0, coalesce(
            (SELECT partitions FROM wallet_partitioning),
            (SELECT max(shard) + 1 FROM accounts WHERE owner = '@treasury'), 1) - 1) AS s(shard)
        ON CONFLICT (ledger_id, owner, asset_id, shard) DO NOTHING;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE frozen_players;
        DELETE FROM accounts a WHERE owner = '@expired'
            AND NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.account_id = a.id);
        ALTER TABLE transactions DROP CONSTRAINT transactions_asset_known;
        ALTER TABLE transactions ALTER COLUMN asset_id SET NOT NULL;
        ALTER TABLE transactions DROP CONSTRAINT transactions_type_known;
        ALTER TABLE transactions ADD CONSTRAINT transactions_type_known CHECK (type IN
            ('topup', 'bonus', 'spend', 'transfer', 'hold', 'capture', 'release', 'reverse'));
        ALTER TABLE transactions DROP CONSTRAINT transactions_hold_lots_cover_amount;
        ALTER TABLE transactions DROP COLUMN lots;
        DROP INDEX accounts_lots_expiring;
        ALTER TABLE accounts DROP CONSTRAINT accounts_lots_cover_available;
        ALTER TABLE accounts DROP COLUMN lots, DROP COLUMN lots_expire_at,
            DROP COLUMN recent_debits;
        DROP FUNCTION wallet_lots_total(jsonb);
        ALTER TABLE assets DROP COLUMN max_balance, DROP COLUMN spend_limit_24h,
            DROP COLUMN credit_lifetime_s;
        """
    )
