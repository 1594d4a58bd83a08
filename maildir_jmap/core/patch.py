"""PatchObject (RFC 8620 §5.3).

``apply_patch`` returns a patched copy of an object (the original is never
mutated) or raises ``SetError("invalidPatch")``. The rules checked here are the
type-independent ones; whether the patched object is valid is the datatype's call.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from maildir_jmap.core.errors import SetError
from maildir_jmap.core.references import PointerError, split_pointer
from maildir_jmap.core.types import JSONObject


def _invalid(detail: str) -> SetError:
    return SetError("invalidPatch", detail)


def parse_patch(patch: JSONObject) -> list[tuple[list[str], Any]]:
    """Validate the pointers of a PatchObject and return (tokens, value) pairs."""
    parsed: list[tuple[list[str], Any]] = []
    for key, value in patch.items():
        try:
            # §5.3: "The keys are a path in JSON Pointer format, with an implicit leading /"
            tokens = split_pointer("/" + key)
        except PointerError as exc:
            raise _invalid(str(exc)) from None
        if any(t == "" for t in tokens):
            raise _invalid(f"empty reference token in {key!r}")
        parsed.append((tokens, value))
    ordered = sorted(parsed, key=lambda item: item[0])
    for (shorter, _), (longer, _) in itertools.pairwise(ordered):
        # §5.3: no pointer may be a prefix of another ("alerts/1/offset" and "alerts").
        if longer[: len(shorter)] == shorter:
            raise _invalid(f"patch {'/'.join(shorter)!r} overlaps {'/'.join(longer)!r}")
    return parsed


def apply_patch(obj: JSONObject, patch: JSONObject) -> JSONObject:
    result = copy.deepcopy(obj)
    for tokens, value in parse_patch(patch):
        parent: Any = result
        for depth, token in enumerate(tokens[:-1]):
            if isinstance(parent, list):
                # §5.3: "The pointer MUST NOT reference inside an array".
                raise _invalid(f"{'/'.join(tokens)!r} points inside an array")
            if not isinstance(parent, dict) or token not in parent:
                # §5.3: "All parts prior to the last ... MUST already exist".
                raise _invalid(f"{'/'.join(tokens[: depth + 1])!r} does not exist")
            parent = parent[token]
            if parent is None:
                raise _invalid(f"{'/'.join(tokens[: depth + 1])!r} is null")
        last = tokens[-1]
        if isinstance(parent, list):
            raise _invalid(f"{'/'.join(tokens)!r} points inside an array")
        if not isinstance(parent, dict):
            raise _invalid(f"{'/'.join(tokens[:-1])!r} is not an object")
        if value is None and len(tokens) > 1:
            # §5.3: null removes the property; a missing key is a no-op. At the top
            # level null stays as the value: the datatype substitutes its default.
            parent.pop(last, None)
        else:
            parent[last] = copy.deepcopy(value)
    return result
