"""PatchObject rules (RFC 8620 §5.3)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maildir_jmap.core.errors import SetError
from maildir_jmap.core.patch import apply_patch

OBJ = {"name": "x", "keywords": {"$seen": True}, "list": [1, 2], "deep": {"a": {"b": 1}}, "n": None}


def test_whole_property_and_nested_key_rfc8620_5_3() -> None:
    out = apply_patch(OBJ, {"name": "y", "keywords/$flagged": True, "deep/a/b": 2})
    assert out["name"] == "y"
    assert out["keywords"] == {"$seen": True, "$flagged": True}
    assert out["deep"] == {"a": {"b": 2}}
    assert OBJ["name"] == "x"  # the original is untouched


def test_null_removes_a_nested_key_and_missing_is_a_no_op_rfc8620_5_3() -> None:
    out = apply_patch(OBJ, {"keywords/$seen": None, "keywords/$absent": None})
    assert out["keywords"] == {}


def test_null_on_a_top_level_property_sets_null_for_the_type_default() -> None:
    assert apply_patch(OBJ, {"name": None})["name"] is None


def test_escaped_pointer_tokens() -> None:
    out = apply_patch({"m": {}}, {"m/a~1b": 1, "m/c~0d": 2})
    assert out["m"] == {"a/b": 1, "c~d": 2}


@pytest.mark.parametrize(
    "patch",
    [
        {"list/0": 5},  # inside an array
        {"list/0/x": 5},
        {"missing/x": 1},  # parent must exist
        {"deep/zz/b": 1},
        {"n/x": 1},  # parent is null
        {"name/x": 1},  # parent is a string
        {"deep": {}, "deep/a/b": 3},  # one pointer a prefix of another
        {"deep/a": {}, "deep/a/b": 3},
        {"keywords/": True},  # empty token
        {"a~2": 1},  # bad escape
    ],
)
def test_invalid_patch_rfc8620_5_3(patch: dict[str, Any]) -> None:
    with pytest.raises(SetError) as info:
        apply_patch(OBJ, patch)
    assert info.value.kind == "invalidPatch"


def test_whole_object_is_a_valid_patch_rfc8620_5_3() -> None:
    target = {"name": "z", "keywords": {}, "list": [3], "deep": {}, "n": 1}
    assert apply_patch(OBJ, target) == target


keys = st.text(alphabet="abc~/$", min_size=1, max_size=4)


@given(
    st.dictionaries(keys, st.dictionaries(keys, st.integers(), max_size=3), max_size=3), st.data()
)
def test_patch_equals_direct_assignment(obj: dict[str, Any], data: st.DataObject) -> None:
    """Setting leaves through escaped pointers does what plain dict assignment does."""
    expected = copy.deepcopy(obj)
    patch: dict[str, Any] = {}
    for outer, inner in obj.items():
        for key in inner:
            value = data.draw(st.one_of(st.none(), st.integers()))
            pointer = "/".join(t.replace("~", "~0").replace("/", "~1") for t in (outer, key))
            patch[pointer] = value
            if value is None:
                expected[outer].pop(key)
            else:
                expected[outer][key] = value
    assert apply_patch(obj, patch) == expected
