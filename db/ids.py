"""Time-ordered UUIDs (version 7, RFC 9562) for transaction ids.

Random v4 ids scatter inserts across the primary-key index; v7 ids grow with time, so
a ledger of ten million transactions keeps appending to the right edge of the index.
"""

from __future__ import annotations

import os
import time
import uuid


def uuid7() -> uuid.UUID:
    """48 bits of Unix milliseconds, the version, the variant, 74 random bits."""
    millis = time.time_ns() // 1_000_000
    rand_a = int.from_bytes(os.urandom(2), "big") & 0x0FFF
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return uuid.UUID(int=value)
