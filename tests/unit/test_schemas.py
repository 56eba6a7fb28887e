"""Request schemas refuse every malformed amount, id, asset code and metadata."""

import pytest
from marshmallow import ValidationError

from api.schemas import BatchSchema, HoldSchema, SpendSchema, TopUpSchema, TransferSchema
from ledger import MAX_AMOUNT

GOOD = {"user_id": "alice", "asset": "GOLD_COINS", "amount": 5}


@pytest.mark.parametrize(
    "amount", [1.5, 5.0, "5", True, False, None, 0, -1, MAX_AMOUNT + 1, [5], {"v": 5}]
)
def test_amount_must_be_a_json_integer_in_range(amount):
    with pytest.raises(ValidationError) as error:
        TopUpSchema().load({**GOOD, "amount": amount})
    assert "amount" in error.value.messages


@pytest.mark.parametrize("amount", [1, MAX_AMOUNT])
def test_amount_bounds_are_inclusive(amount):
    assert TopUpSchema().load({**GOOD, "amount": amount})["amount"] == amount


@pytest.mark.parametrize(
    "user_id", ["", "@treasury", "a" * 129, "white space", "slash/y", "é", 42, None]
)
def test_user_ids_are_refused_outside_the_allowed_alphabet(user_id):
    with pytest.raises(ValidationError) as error:
        SpendSchema().load({**GOOD, "user_id": user_id})
    assert "user_id" in error.value.messages


@pytest.mark.parametrize("user_id", ["a", "Player_1.x:y@z-w", "a" * 128])
def test_user_ids_allowed(user_id):
    assert SpendSchema().load({**GOOD, "user_id": user_id})["user_id"] == user_id


@pytest.mark.parametrize("asset", ["gold", "G", "1GOLD", "GOLD-COINS", "A" * 33])
def test_asset_codes_follow_the_pattern(asset):
    with pytest.raises(ValidationError):
        TopUpSchema().load({**GOOD, "asset": asset})


def test_metadata_is_an_object_of_at_most_4_kib():
    TopUpSchema().load({**GOOD, "metadata": {"k": "v" * 4000}})
    with pytest.raises(ValidationError) as error:
        TopUpSchema().load({**GOOD, "metadata": {"k": "v" * 4100}})
    assert "metadata" in error.value.messages
    with pytest.raises(ValidationError):
        TopUpSchema().load({**GOOD, "metadata": ["not", "an", "object"]})


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError) as error:
        TopUpSchema().load({**GOOD, "ammount": 5})
    assert "ammount" in error.value.messages


def test_transfer_to_oneself_is_refused():
    with pytest.raises(ValidationError) as error:
        TransferSchema().load(
            {"from_user_id": "a", "to_user_id": "a", "asset": "GOLD_COINS", "amount": 1}
        )
    assert "to_user_id" in error.value.messages


@pytest.mark.parametrize("expires_in", [0, 604_801, 1.5, "60"])
def test_hold_expiry_is_1_second_to_a_week(expires_in):
    with pytest.raises(ValidationError):
        HoldSchema().load({**GOOD, "expires_in": expires_in})


@pytest.mark.parametrize("count", [0, 1001])
def test_a_batch_holds_1_to_1000_commands(count):
    with pytest.raises(ValidationError):
        BatchSchema().load({"commands": [{}] * count})


def test_timestamps_are_utc_to_the_microsecond_with_z():
    from datetime import UTC, datetime, timedelta, timezone

    from db.reads import iso

    assert iso(datetime(2026, 11, 20, 10, 0, 0, 12345, tzinfo=UTC)) == "2026-11-20T10:00:00.012345Z"
    assert iso(datetime(2026, 11, 20, 10, 0, tzinfo=UTC)) == "2026-11-20T10:00:00.000000Z"
    two_hours_east = timezone(timedelta(hours=2))
    assert (
        iso(datetime(2026, 11, 20, 12, 0, 0, 999999, tzinfo=two_hours_east))
        == "2026-11-20T10:00:00.999999Z"
    )
    assert iso(None) is None
