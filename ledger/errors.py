"""Domain errors with the stable codes clients see in a rejected transaction."""

from __future__ import annotations

from enum import StrEnum


class RejectionCode(StrEnum):
    """Why a command was rejected: a final status, with no effect on any balance."""

    INSUFFICIENT_FUNDS = "insufficient_funds"
    HOLD_NOT_ACTIVE = "hold_not_active"
    ALREADY_REVERSED = "already_reversed"
    NOT_REVERSIBLE = "not_reversible"
    CAPTURE_EXCEEDS_HOLD = "capture_exceeds_hold"
    BALANCE_LIMIT_EXCEEDED = "balance_limit_exceeded"
    SAME_ACCOUNT = "same_account"
    SPEND_LIMIT_EXCEEDED = "spend_limit_exceeded"
    WALLET_FROZEN = "wallet_frozen"
    NOTHING_TO_EXPIRE = "nothing_to_expire"


class LedgerError(Exception):
    """A broken invariant: a bug, never a client error. Nothing may be written."""


class UnbalancedPostings(LedgerError):
    """A set of postings whose amounts do not sum to zero in some asset."""


class NegativeAvailable(LedgerError):
    """A user wallet whose available balance would go below zero."""
