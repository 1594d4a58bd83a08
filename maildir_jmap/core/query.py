"""Filters, comparators, collations and result windows for /query (RFC 8620 §5.5).

Types supply what is special to them (which filter properties and sort properties
exist and how to evaluate them); this module validates the generic shape and does
position/anchor/limit arithmetic.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from maildir_jmap.core.capabilities import COLLATIONS
from maildir_jmap.core.errors import MethodError
from maildir_jmap.core.types import ArgumentError, JSONObject

log = logging.getLogger(__name__)

MAX_FILTER_DEPTH = 32  # deeper trees are refused rather than recursed into
OPERATORS = ("AND", "OR", "NOT")

ConditionCheck = Callable[[JSONObject], None]
"""Validates one FilterCondition; raises ArgumentError (bad types) or
MethodError("unsupportedFilter") (a property we cannot filter on)."""


def validate_filter(value: object, check_condition: ConditionCheck, depth: int = 0) -> None:
    """Check a ``FilterOperator|FilterCondition|null`` tree (§5.5)."""
    if value is None and depth == 0:
        return
    if not isinstance(value, dict):
        raise ArgumentError("a filter must be an object")
    if depth > MAX_FILTER_DEPTH:
        raise MethodError("unsupportedFilter", f"filters nest at most {MAX_FILTER_DEPTH} deep")
    if "operator" in value:
        # §5.5: a FilterOperator has exactly operator and conditions.
        if set(value) != {"operator", "conditions"}:
            raise ArgumentError("a FilterOperator has only 'operator' and 'conditions'")
        if value["operator"] not in OPERATORS:
            raise ArgumentError(f"unknown filter operator {value['operator']!r}")
        conditions = value["conditions"]
        if not isinstance(conditions, list):
            raise ArgumentError("'conditions' must be an array")
        for condition in conditions:
            validate_filter(condition, check_condition, depth + 1)
        return
    check_condition(value)


@dataclass(frozen=True)
class Comparator:
    property: str
    is_ascending: bool
    collation: str | None
    extra: Mapping[str, Any]


def parse_sort(
    value: object,
    sortable: Sequence[str],
    extra_args: Mapping[str, Callable[[Any], bool]] | None = None,
) -> list[Comparator]:
    """Validate ``Comparator[]|null``. ``extra_args`` maps a type-specific comparator
    property (RFC 8621's ``keyword``) to a predicate its value must satisfy.

    Keys a Comparator does not define are ignored (logged at debug): §5.5 lists the
    Comparator's properties but names no error for others, and real clients send
    them (jmapc puts ``anchorOffset``, ``calculateTotal`` and ``position`` in every
    Comparator). Known keys with a bad value are still invalidArguments."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ArgumentError("'sort' must be an array of Comparators")
    extra_args = extra_args or {}
    comparators: list[Comparator] = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("property"), str):
            raise ArgumentError("a Comparator must be an object with a String 'property'")
        ascending = item.get("isAscending", True)
        collation = item.get("collation")
        if not isinstance(ascending, bool):
            raise ArgumentError("'isAscending' must be a Boolean")
        if collation is not None and not isinstance(collation, str):
            raise ArgumentError("'collation' must be a String")
        extra = {}
        for key, arg in item.items():
            if key in ("property", "isAscending", "collation"):
                continue
            check = extra_args.get(key)
            if check is None:
                log.debug("ignoring unknown Comparator property %r", key)
                continue
            if not check(arg):
                raise ArgumentError(f"invalid Comparator {key!r}: {arg!r}")
            extra[key] = arg
        if item["property"] not in sortable:
            raise MethodError("unsupportedSort", f"cannot sort by {item['property']!r}")
        if collation is not None and collation not in COLLATIONS:
            raise MethodError("unsupportedSort", f"unknown collation {collation!r}")
        comparators.append(Comparator(item["property"], ascending, collation, extra))
    return comparators


def collation_key(collation: str | None) -> Callable[[str], Any]:
    """A sort key for strings under an RFC 4790 collation. The default (no
    collation given) is i;unicode-casemap: unicode-aware and case-insensitive, as
    §5.5 asks."""
    if collation == "i;ascii-numeric":
        return _ascii_numeric_key
    if collation == "i;ascii-casemap":
        return lambda s: s.encode("utf-8").lower()
    return _unicode_casemap_key


def _unicode_casemap_key(text: str) -> str:
    # RFC 5051: titlecase-fold after NFKD; casefold() is the closest stdlib tool.
    return unicodedata.normalize("NFKD", text).casefold()


def _ascii_numeric_key(text: str) -> tuple[int, int]:
    # RFC 4790 §9.1: the leading digits as a number; strings without one sort last.
    digits = len(text) - len(text.lstrip("0123456789"))
    if digits == 0:
        return (1, 0)
    return (0, int(text[:digits]))


class Descending:
    """Wraps a sort-key value so that it orders in reverse inside a tuple key
    (a comparator with isAscending false among ascending ones, §5.5)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: Descending) -> bool:
        return bool(other.value < self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Descending) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


@dataclass(frozen=True)
class Window:
    position: int
    ids: list[str]
    limit: int | None  # the limit the server applied, if it differs from the request


def window(
    ids: Sequence[str],
    *,
    position: int = 0,
    anchor: str | None = None,
    anchor_offset: int = 0,
    limit: int | None = None,
    max_limit: int | None = None,
) -> Window:
    """§5.5 position/anchor/limit over the full sorted result list. ``ids`` may be
    computed lazily: its length is asked for only when a negative position needs it."""
    if anchor is not None:
        try:
            start = ids.index(anchor) + anchor_offset
        except ValueError:
            raise MethodError("anchorNotFound") from None
        start = max(start, 0)
    else:
        start = position if position >= 0 else max(len(ids) + position, 0)
    applied = limit
    if max_limit is not None and (limit is None or limit > max_limit):
        applied = max_limit
    page = list(ids[start:] if applied is None else ids[start : start + applied])
    empty = not page and (start == 0 or not ids[:1])
    return Window(
        position=0 if empty else start,  # errata: undefined with no results
        ids=page,
        limit=applied if applied != limit else None,
    )


def matches_filter(filter: Any, condition: Callable[[JSONObject], bool]) -> bool:
    """§5.5: a FilterOperator tree (validated) over ``condition`` for its leaves."""
    if filter is None:
        return True
    if "operator" in filter:
        results = (matches_filter(c, condition) for c in filter["conditions"])
        if filter["operator"] == "AND":
            return all(results)
        if filter["operator"] == "OR":
            return any(results)
        return not any(results)
    return condition(filter)
