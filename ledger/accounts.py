"""Who money belongs to: user wallets, the system accounts, and a wallet's partition."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

# Source of top-ups, source of bonuses, sink of spends and captures, sink of expired
# credits. They may go negative: @treasury's balance is minus everything it has issued.
TREASURY = "@treasury"
PROMOTIONS = "@promotions"
REVENUE = "@revenue"
EXPIRED = "@expired"
SYSTEM_ACCOUNTS = (TREASURY, PROMOTIONS, REVENUE, EXPIRED)

# Amounts are integers in the asset's smallest unit and must survive a trip through a
# JavaScript client, so they stay within the doubles' exact integer range. Balances
# are held to the same bound, so that a balance read is exact in every client too.
MAX_AMOUNT = 2**53 - 1

USER_ID_PATTERN = r"[A-Za-z0-9_.:@-]{1,128}"
ASSET_CODE_PATTERN = r"^[A-Z][A-Z0-9_]{1,31}$"
USER_ID = re.compile(USER_ID_PATTERN)
ASSET_CODE = re.compile(ASSET_CODE_PATTERN)


@dataclass(frozen=True, order=True)
class AccountRef:
    """One account: an owner (a user id, or a system account name) in one asset."""

    owner: str
    asset: str

    @property
    def is_system(self) -> bool:
        return is_system(self.owner)


def is_system(owner: str) -> bool:
    """System account names start with '@'; user ids never do."""
    return owner.startswith("@")


def is_valid_user_id(user_id: str) -> bool:
    return USER_ID.fullmatch(user_id) is not None and not is_system(user_id)


# The ledger every service has; its wallets hash as they did before there were ledgers,
# so a wallet's pending commands and its new ones share a partition across the upgrade.
DEFAULT_LEDGER_ID = 1


def wallet_route(user_id: str, ledger_id: int = DEFAULT_LEDGER_ID) -> int:
    """A wallet's stable hash, 0 to 2**32 - 1: its partition is this modulo the count.

    The intake sends it to the database, which takes it modulo the partition count
    it holds (db.partitioning), so that a count changed on a live system is read in
    the same transaction that stores the command. zlib.crc32, not hash(): Python
    randomises str hashes per process.
    """
    key = user_id if ledger_id == DEFAULT_LEDGER_ID else f"{ledger_id}/{user_id}"
    return zlib.crc32(key.encode("utf-8"))


def partition_of(user_id: str, partitions: int, ledger_id: int = DEFAULT_LEDGER_ID) -> int:
    """The partition that owns a wallet when there are `partitions`: stable across
    processes and restarts.

    The same player id in two ledgers is two wallets, which may land in different
    partitions.
    """
    return wallet_route(user_id, ledger_id) % partitions
