"""The expiry sweeper: beat's task that turns due credits into `expiry` commands.

It finds wallets whose soonest lot is due (db.controls.due_wallets, one index range
scan of accounts_lots_expiring) and submits one `expiry` per due lot through the
intake every command takes (db.intake.record, then the doorbell): the expiry is
applied in the wallet's partition in acceptance order, and decides its amount then
(ledger.Book: what is left unreserved of the lots expiring by that instant).

The idempotency key is the wallet, the lot's instant and the wallet row's last change:
two sweeps of one unchanged wallet (two beats, a retried task) submit one command,
while a lot that comes back already expired from a hold (the wallet row changed) gets
a fresh expiry. A duplicate anyway (nothing left) is rejected `nothing_to_expire` with
no effect.
"""

from __future__ import annotations

import logging

from db import controls, intake
from db.clients import BOOTSTRAP_CLIENT_ID
from db.engine import connect
from ledger import CommandType, TransactionStatus, due_expiries, wallet_route
from worker import doorbell
from worker.app import app

log = logging.getLogger(__name__)

# Wallets looked at per sweep: a backlog is worked off over the next sweeps.
SWEEP_WALLETS = 500


def submit_due_expiries(limit: int = SWEEP_WALLETS) -> list[intake.Recorded]:
    """Submit the expiries due now; returns what was recorded (new or replayed)."""
    commands: list[intake.NewCommand] = []
    with connect() as conn:
        for wallet in controls.due_wallets(conn, limit):
            lots = controls.lots_of(wallet.lots, int(wallet.balance) - wallet.held)
            for lot in due_expiries(lots, wallet.now):
                assert lot.expires_at is not None
                instant = lot.expires_at.isoformat()
                fields = {"user_id": wallet.owner, "asset_id": wallet.asset_id, "at": instant}
                commands.append(
                    intake.NewCommand(
                        ledger_id=wallet.ledger_id,
                        client_id=BOOTSTRAP_CLIENT_ID,
                        idempotency_key=(
                            f"expiry:{wallet.id}:{instant}:{wallet.updated_at.isoformat()}"
                        ),
                        fingerprint=intake.fingerprint(CommandType.EXPIRY.value, fields),
                        type=CommandType.EXPIRY.value,
                        route=wallet_route(wallet.owner, wallet.ledger_id),
                        user_id=wallet.owner,
                        asset_id=wallet.asset_id,
                        expires_at=lot.expires_at,
                    )
                )
        recorded = intake.record(conn, commands) if commands else []
    # After the commit: a drain must see what it is rung for.
    doorbell.ring_many(
        r.row.partition for r in recorded if r.row.status == TransactionStatus.PENDING
    )
    created = sum(r.created for r in recorded)
    if created:
        log.info("expiry sweep: %d expiries submitted", created)
    return recorded


@app.task(name="wallet.expire_credits", ignore_result=True, send_events=False)
def expire_credits() -> int:
    """Beat's entry point (celeryconfig: every WALLET_EXPIRY_SWEEP_EVERY seconds)."""
    return sum(r.created for r in submit_due_expiries())
