"""Keyset cursors: the key of the next page, opaque to clients (`kind:key`, base64url).

Every paged listing (wallet and system histories, the admin searches) uses these, so a
cursor of one kind is refused by a listing of another, the same way everywhere.
"""

from __future__ import annotations

import base64
import binascii

from api.errors import ApiError


def encode(kind: str, key: object) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode().rstrip("=")


def decode(cursor: str, kind: str) -> str:
    """The key a cursor of `kind` carries, or 422 validation_error."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid() from None
    found, _, key = raw.partition(":")
    if found != kind or not key:
        raise invalid()
    return key


def decode_int(cursor: str, kind: str) -> int:
    try:
        return int(decode(cursor, kind))
    except ValueError:
        raise invalid() from None


def invalid() -> ApiError:
    return ApiError(
        422,
        "validation_error",
        "The cursor is not valid.",
        errors={"cursor": ["Not a cursor from this API."]},
    )
