"""The wallet ledger's domain: accounts, commands, postings and the rules.

Standard library only (a test enforces it): everything here is pure and fast to test.
"""

from ledger.accounts import (
    ASSET_CODE_PATTERN,
    MAX_AMOUNT,
    PROMOTIONS,
    REVENUE,
    SYSTEM_ACCOUNTS,
    TREASURY,
    AccountRef,
    is_system,
    is_valid_user_id,
    partition_of,
)
from ledger.book import Applied, Book, HoldState, HoldStatus, Outcome, Record, Rejected, Wallet
from ledger.commands import (
    REVERSIBLE,
    Bonus,
    Capture,
    Command,
    CommandType,
    Hold,
    Movement,
    Release,
    Reverse,
    Spend,
    TopUp,
    Transfer,
    WalletMovement,
)
from ledger.errors import LedgerError, NegativeAvailable, RejectionCode, UnbalancedPostings
from ledger.postings import Direction, Posting, check_balanced, residual, transfer

__all__ = [
    "ASSET_CODE_PATTERN",
    "MAX_AMOUNT",
    "PROMOTIONS",
    "REVENUE",
    "REVERSIBLE",
    "SYSTEM_ACCOUNTS",
    "TREASURY",
    "AccountRef",
    "Applied",
    "Bonus",
    "Book",
    "Capture",
    "Command",
    "CommandType",
    "Direction",
    "Hold",
    "HoldState",
    "HoldStatus",
    "LedgerError",
    "Movement",
    "NegativeAvailable",
    "Outcome",
    "Posting",
    "Record",
    "Rejected",
    "RejectionCode",
    "Release",
    "Reverse",
    "Spend",
    "TopUp",
    "Transfer",
    "UnbalancedPostings",
    "Wallet",
    "WalletMovement",
    "check_balanced",
    "is_system",
    "is_valid_user_id",
    "partition_of",
    "residual",
    "transfer",
]
