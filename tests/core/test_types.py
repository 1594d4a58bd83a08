"""JMAP data types (RFC 8620 §1.2-1.4)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maildir_jmap.core.types import (
    ArgumentError,
    arg_id_list,
    format_epoch,
    format_utc_date,
    is_id,
    is_int,
    is_unsigned_int,
    parse_date,
    parse_utc_date,
)


@pytest.mark.parametrize("value", ["a", "A-_9", "x" * 255])
def test_valid_ids_rfc8620_1_2(value: str) -> None:
    assert is_id(value)


@pytest.mark.parametrize("value", ["", "x" * 256, "a b", "a/b", "é", "a=", 5, None, "../x"])
def test_invalid_ids_rfc8620_1_2(value: object) -> None:
    assert not is_id(value)


def test_ints_rfc8620_1_3() -> None:
    assert is_int(0)
    assert is_int(-(2**53) + 1)
    assert is_int(2**53 - 1)
    assert not is_int(2**53)
    assert not is_int(True)
    assert not is_int(1.0)
    assert is_unsigned_int(0)
    assert not is_unsigned_int(-1)


def test_dates_rfc8620_1_4() -> None:
    assert format_utc_date(parse_utc_date("2014-10-30T06:12:00Z")) == "2014-10-30T06:12:00Z"
    assert parse_utc_date("2014-10-30T06:12:00.123Z").microsecond == 123000
    assert parse_date("2014-10-30T14:12:00+08:00") == parse_utc_date("2014-10-30T06:12:00Z")
    for bad in ("2014-10-30T06:12:00", "2014-10-30t06:12:00z", "2014-13-30T06:12:00Z", 5):
        with pytest.raises(ArgumentError):
            parse_utc_date(bad)


@given(st.datetimes(min_value=__import__("datetime").datetime(1970, 1, 1)))
def test_utc_date_round_trips(moment: object) -> None:
    from datetime import UTC

    aware = moment.replace(microsecond=0, tzinfo=UTC)  # type: ignore[attr-defined]
    assert parse_utc_date(format_utc_date(aware)) == aware


@given(st.floats(min_value=-62_135_596_800, max_value=253_402_300_799.9, allow_nan=False))
def test_format_epoch_is_strftime_of_gmtime(seconds: float) -> None:
    """RFC 8620 §1.4 UTCDate, made from tables (core/types.py) as strftime would."""
    assert format_epoch(seconds) == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@given(st.lists(st.text(alphabet="AZaz09_-\n .#é", max_size=8) | st.integers(), max_size=6))
def test_an_id_list_is_accepted_exactly_when_each_is_an_id(items: list[object]) -> None:
    """RFC 8620 §1.2: the one-match check of a whole list agrees with ``is_id``
    item by item (a line break, which joins the items, is in no Id)."""
    valid = all(is_id(item) for item in items)
    try:
        got = arg_id_list({"ids": items}, "ids")
    except ArgumentError:
        assert not valid
    else:
        assert valid
        assert got == items
