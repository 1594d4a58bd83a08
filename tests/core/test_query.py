"""Result windows and collations (RFC 8620 §5.5, RFC 4790)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maildir_jmap.core.errors import MethodError
from maildir_jmap.core.query import collation_key, parse_sort, window
from maildir_jmap.core.types import ArgumentError

IDS = [f"i{n}" for n in range(10)]


def test_window_rules_rfc8620_5_5() -> None:
    assert window(IDS, position=2, limit=3).ids == ["i2", "i3", "i4"]
    assert window(IDS, position=-3).ids == ["i7", "i8", "i9"]
    assert window(IDS, position=-30, limit=1).ids == ["i0"]
    assert window(IDS, position=12).ids == []
    assert window([], position=5).position == 0  # errata: undefined with no results
    w = window(IDS, anchor="i5", anchor_offset=-2, limit=2, position=9)
    assert (w.position, w.ids) == (3, ["i3", "i4"])
    assert window(IDS, limit=50, max_limit=4).limit == 4
    assert window(IDS, limit=3, max_limit=4).limit is None
    with pytest.raises(MethodError):
        window(IDS, anchor="nope")


@given(st.integers(-20, 20), st.integers(0, 20) | st.none())
def test_window_is_a_slice_of_the_results(position: int, limit: int | None) -> None:
    w = window(IDS, position=position, limit=limit)
    start = position if position >= 0 else max(0, len(IDS) + position)
    assert w.ids == IDS[start : None if limit is None else start + limit]


def test_collations_rfc4790() -> None:
    words = ["b", "B", "a", "Ä", "ä"]
    assert sorted(words, key=collation_key("i;ascii-casemap"))[:3] == ["a", "b", "B"]
    folded = sorted(["Zebra", "apple", "Äpfel"], key=collation_key("i;unicode-casemap"))
    assert folded == ["apple", "Äpfel", "Zebra"]
    numeric = sorted(["10", "9", "x", "100"], key=collation_key("i;ascii-numeric"))
    assert numeric == ["9", "10", "100", "x"]


def test_unknown_comparator_keys_are_ignored_rfc8620_5_5() -> None:
    """jmapc sends anchorOffset, calculateTotal and position inside every
    Comparator; those are ignored, while known keys are still type-checked."""
    sort = parse_sort(
        [
            {
                "property": "name",
                "isAscending": False,
                "anchorOffset": 0,
                "calculateTotal": False,
                "position": 0,
            }
        ],
        ["name"],
    )
    assert [(c.property, c.is_ascending, dict(c.extra)) for c in sort] == [("name", False, {})]
    with pytest.raises(ArgumentError):
        parse_sort([{"property": "name", "isAscending": "no"}], ["name"])
    with pytest.raises(ArgumentError):
        parse_sort([{"property": "name", "collation": 5}], ["name"])
    with pytest.raises(ArgumentError):  # a type's own key keeps its check
        parse_sort([{"property": "x", "keyword": 5}], ["x"], {"keyword": lambda v: False})
