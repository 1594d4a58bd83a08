"""JSON Pointer with the '*' extension (RFC 8620 §3.7, RFC 6901)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from maildir_jmap.core.references import PointerError, evaluate, split_pointer

DOC = {
    "list": [
        {"id": "a", "emailIds": ["1", "2"], "n": {"x": 1}},
        {"id": "b", "emailIds": ["3"], "n": {"x": 2}},
    ],
    "a/b": 1,
    "m~n": 2,
    "": 3,
    "nested": [[1, 2], [3]],
}


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("", DOC),
        ("/list/0/id", "a"),
        ("/list/1/emailIds/0", "3"),
        ("/a~1b", 1),
        ("/m~0n", 2),
        ("/", 3),
        ("/list/*/id", ["a", "b"]),
        ("/list/*/emailIds", ["1", "2", "3"]),  # §3.7: arrays are flattened
        ("/list/*/n/x", [1, 2]),
        ("/nested/*", [1, 2, 3]),
    ],
)
def test_pointer_evaluates_rfc8620_3_7(pointer: str, expected: Any) -> None:
    assert evaluate(DOC, split_pointer(pointer)) == expected


@pytest.mark.parametrize(
    "pointer",
    ["list", "/missing", "/list/2", "/list/01", "/list/-", "/list/x", "/list/0/id/0", "/~2", "/a~"],
)
def test_bad_pointer_raises_rfc6901(pointer: str) -> None:
    with pytest.raises(PointerError):
        evaluate(DOC, split_pointer(pointer))


def test_star_on_an_object_is_an_ordinary_member_name() -> None:
    assert evaluate({"*": 5}, split_pointer("/*")) == 5


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


@given(st.lists(st.text(), max_size=5))
def test_escaping_round_trips_rfc6901(tokens: list[str]) -> None:
    pointer = "".join("/" + _escape(t) for t in tokens)
    assert split_pointer(pointer) == tokens


@given(st.dictionaries(st.text(min_size=1), st.integers(), min_size=1))
def test_every_member_is_reachable(doc: dict[str, int]) -> None:
    for key, value in doc.items():
        assert evaluate(doc, split_pointer("/" + _escape(key))) == value


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [("/list/*/id", ["a", "b"]), ("/list/0/n/x", 1), ("/list/1", DOC["list"][1]), ("", DOC)],
)
def test_pointer_reads_into_pre_serialized_values(pointer: str, expected: Any) -> None:
    """Email/get may answer with JSON text (core/types.py ``Serialized``): a
    reference into it sees the values it holds."""
    texts = {**DOC, "list": [orjson.Fragment(orjson.dumps(item)) for item in DOC["list"]]}
    assert evaluate(texts, split_pointer(pointer)) == expected
    whole = orjson.Fragment(orjson.dumps(DOC))
    assert evaluate(whole, split_pointer(pointer)) == expected
