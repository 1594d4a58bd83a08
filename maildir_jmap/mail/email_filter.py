"""What an Email query can ask (RFC 8621 §4.4.1, §4.4.2), as two tables:
``CONDITIONS`` (each FilterCondition property: how its value is type-checked and
how it is evaluated on an EmailRecord) and ``SORTS`` (each sort property: the
value it compares). Most conditions are answered from the index; text, body, cc
and bcc from the full-text index (store/search.py); header by reading the
candidates' header sections.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from maildir_jmap.core.errors import MethodError
from maildir_jmap.core.query import Comparator, Descending, collation_key
from maildir_jmap.core.types import (
    ArgumentError,
    JSONObject,
    is_id,
    is_unsigned_int,
    parse_utc_date,
)
from maildir_jmap.mime.headers import as_text
from maildir_jmap.mime.parse import split_head
from maildir_jmap.store.account import Account
from maildir_jmap.store.index import Index
from maildir_jmap.store.keywords import is_keyword
from maildir_jmap.store.records import EmailRecord
from maildir_jmap.store.search import match_expression

Predicate = Callable[[EmailRecord], bool]
FULL_TEXT = {  # condition -> search index columns (None: all of them)
    "text": None,
    "body": ("body",),
    "cc": ("cc",),
    "bcc": ("bcc",),
}


class Matcher:
    """Compiles a filter tree into a predicate over EmailRecords. With ``streamed``
    the full-text conditions are taken as met: the caller walks their matches."""

    def __init__(
        self, index: Index, account: Account | None = None, *, streamed: bool = False
    ) -> None:
        self.index = index
        self.account = account
        self.streamed = streamed
        self._hits: dict[str, set[str]] = {}

    def hits(self, expression: str) -> set[str]:
        """Full-text matches, asked of the search index once per query."""
        found = self._hits.get(expression)
        if found is None:
            assert self.account is not None
            found = self._hits[expression] = self.account.search.search(expression)
        return found

    def thread_keywords(self, rec: EmailRecord) -> list[frozenset[str]]:
        thread = self.index.threads.get(rec.thread_id)
        members = thread.email_ids if thread else [rec.id]
        return [self.index.emails[m].keywords for m in members if m in self.index.emails]

    def compile(self, filter_: Any) -> Predicate:
        if filter_ is None:
            return lambda rec: True
        if "operator" in filter_:
            parts = [self.compile(c) for c in filter_["conditions"]]
            if filter_["operator"] == "AND":
                return lambda rec: all(p(rec) for p in parts)
            if filter_["operator"] == "OR":
                return lambda rec: any(p(rec) for p in parts)
            return lambda rec: not any(p(rec) for p in parts)
        tests = [CONDITIONS[k].compile(self, k, v) for k, v in filter_.items()]
        return lambda rec: all(t(rec) for t in tests)

    def required(self, filter_: Any) -> set[str] | None:
        """Ids any match must be among (from full-text conditions that every match
        satisfies), or None: a search then looks at its hits, not every Email."""
        if not isinstance(filter_, dict) or self.account is None:
            return None
        if "operator" in filter_:
            if filter_["operator"] != "AND":
                return None
            sets = [r for r in (self.required(c) for c in filter_["conditions"]) if r is not None]
            return set.intersection(*sets) if sets else None
        found: set[str] | None = None
        for key, value in filter_.items():
            if key in FULL_TEXT:
                expression = match_expression(value, FULL_TEXT[key])
                if expression is None:
                    continue
                hits = self.hits(expression)
                found = hits if found is None else found & hits
        return found


# -- type checks ---------------------------------------------------------------


def _an_id(key: str, value: object) -> None:
    if not is_id(value):
        raise ArgumentError(f"{key} must be an Id")


def _ids(key: str, value: object) -> None:
    if not isinstance(value, list) or not all(is_id(v) for v in value):
        raise ArgumentError(f"{key} must be an array of Ids")


def _date(key: str, value: object) -> None:
    parse_utc_date(value)


def _unsigned(key: str, value: object) -> None:
    if not is_unsigned_int(value):
        raise ArgumentError(f"{key} must be an UnsignedInt")


def _keyword(key: str, value: object) -> None:
    if not is_keyword(value):
        raise ArgumentError(f"not a keyword: {value!r}")


def _boolean(key: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ArgumentError(f"{key} must be a Boolean")


def _string(key: str, value: object) -> None:
    if not isinstance(value, str):
        raise ArgumentError(f"{key} must be a String")


def _header_value(key: str, value: object) -> None:
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= 2
        or not all(isinstance(v, str) for v in value)
    ):
        raise ArgumentError("header must be [name] or [name, value]")


# -- evaluation ------------------------------------------------------------------


def _in_mailbox(m: Matcher, key: str, value: Any) -> Predicate:
    return lambda rec: value in rec.mailbox_ids


def _in_mailbox_other_than(m: Matcher, key: str, value: Any) -> Predicate:
    excluded = set(value)
    return lambda rec: bool(rec.mailbox_ids - excluded)


def _before(m: Matcher, key: str, value: Any) -> Predicate:
    moment = parse_utc_date(value).timestamp()
    return lambda rec: rec.received < moment


def _after(m: Matcher, key: str, value: Any) -> Predicate:
    moment = parse_utc_date(value).timestamp()
    return lambda rec: rec.received >= moment


def _min_size(m: Matcher, key: str, value: Any) -> Predicate:
    return lambda rec: rec.size >= value


def _max_size(m: Matcher, key: str, value: Any) -> Predicate:
    return lambda rec: rec.size < value


def _has_keyword(m: Matcher, key: str, value: Any) -> Predicate:
    keyword = value.lower()
    return lambda rec: keyword in rec.keywords


def _not_keyword(m: Matcher, key: str, value: Any) -> Predicate:
    keyword = value.lower()
    return lambda rec: keyword not in rec.keywords


def _all_in_thread(m: Matcher, key: str, value: Any) -> Predicate:
    keyword = value.lower()
    return lambda rec: all(keyword in k for k in m.thread_keywords(rec))


def _some_in_thread(m: Matcher, key: str, value: Any) -> Predicate:
    keyword = value.lower()
    return lambda rec: any(keyword in k for k in m.thread_keywords(rec))


def _none_in_thread(m: Matcher, key: str, value: Any) -> Predicate:
    keyword = value.lower()
    return lambda rec: not any(keyword in k for k in m.thread_keywords(rec))


def _has_attachment(m: Matcher, key: str, value: Any) -> Predicate:
    return lambda rec: rec.has_attachment == value


def _full_text(m: Matcher, key: str, value: Any) -> Predicate:
    expression = match_expression(value, FULL_TEXT[key])
    if expression is None or m.streamed:
        return lambda rec: True
    hits = m.hits(expression)
    return lambda rec: rec.id in hits


def _contains(field: Callable[[EmailRecord], str]) -> Callable[[Matcher, str, Any], Predicate]:
    def compile_(m: Matcher, key: str, value: Any) -> Predicate:
        needle = value.casefold()
        return lambda rec: needle in field(rec).casefold()

    return compile_


def _header(m: Matcher, key: str, value: Any) -> Predicate:
    """§4.4.1 header: the field is present, or its Text form contains the value
    (case-insensitively); read from the message's header section."""
    name = value[0].lower()
    needle = value[1].casefold() if len(value) == 2 else None
    account = m.account

    def test(rec: EmailRecord) -> bool:
        raw = account.read_message(rec) if account is not None else None
        if raw is None:
            return False
        fields, _ = split_head(raw)
        values = [v for n, v in fields if n.lower() == name]
        if needle is None:
            return bool(values)
        return any(needle in as_text(v).casefold() for v in values)

    return test


@dataclass(frozen=True)
class Condition:
    check: Callable[[str, object], None]
    """Raises ArgumentError when the value has the wrong type (invalidArguments)."""
    compile: Callable[[Matcher, str, Any], Predicate]


CONDITIONS: dict[str, Condition] = {
    "inMailbox": Condition(_an_id, _in_mailbox),
    "inMailboxOtherThan": Condition(_ids, _in_mailbox_other_than),
    "before": Condition(_date, _before),
    "after": Condition(_date, _after),
    "minSize": Condition(_unsigned, _min_size),
    "maxSize": Condition(_unsigned, _max_size),
    "allInThreadHaveKeyword": Condition(_keyword, _all_in_thread),
    "someInThreadHaveKeyword": Condition(_keyword, _some_in_thread),
    "noneInThreadHaveKeyword": Condition(_keyword, _none_in_thread),
    "hasKeyword": Condition(_keyword, _has_keyword),
    "notKeyword": Condition(_keyword, _not_keyword),
    "hasAttachment": Condition(_boolean, _has_attachment),
    "text": Condition(_string, _full_text),
    "from": Condition(_string, _contains(lambda rec: rec.sender)),
    "to": Condition(_string, _contains(lambda rec: rec.to)),
    "cc": Condition(_string, _full_text),
    "bcc": Condition(_string, _full_text),
    "subject": Condition(_string, _contains(lambda rec: rec.subject)),
    "body": Condition(_string, _full_text),
    "header": Condition(_header_value, _header),
}
assert set(FULL_TEXT) <= set(CONDITIONS)


def check_condition(condition: JSONObject) -> None:
    """§4.4.1 FilterCondition, type-checked; a property not in the table is
    unsupportedFilter."""
    for key, value in condition.items():
        known = CONDITIONS.get(key)
        if known is None:
            raise MethodError("unsupportedFilter", f"Email cannot be filtered by {key!r}")
        known.check(key, value)


def uses_full_text(filter_: Any) -> bool:
    if not isinstance(filter_, dict):
        return False
    if "operator" in filter_:
        return any(uses_full_text(c) for c in filter_["conditions"])
    return any(key in FULL_TEXT for key in filter_)


# -- sorting (§4.4.2) --------------------------------------------------------------

_PREFIX = re.compile(r"^\s*((re|fwd?|aw|wg|sv|vs)\s*(\[\d+\])?\s*:|\[[^\]]*\])\s*", re.I)
_SUFFIX = re.compile(r"\s*\(fwd\)\s*$", re.I)


def base_subject(subject: str) -> str:
    """RFC 5256 §2.1, approximately: reply/forward prefixes, list tags and a
    trailing "(fwd)" removed, white space folded."""
    text = " ".join(subject.split())
    while True:
        stripped = _SUFFIX.sub("", _PREFIX.sub("", text))
        if stripped == text:
            return text
        text = stripped


def display_key(rendered: str) -> str:
    """The name, else the address, of the first address in a rendered header."""
    first = rendered.split(", ", 1)[0]
    name, sep, _ = first.partition(" <")
    return name if sep else first


SortValue = Callable[[Matcher, Comparator, EmailRecord], Any]


def _text(field: Callable[[EmailRecord], str]) -> SortValue:
    return lambda m, c, rec: collation_key(c.collation)(field(rec))


def _keyword_of(c: Comparator) -> str:
    return str(c.extra["keyword"]).lower()


SORTS: dict[str, SortValue] = {
    "receivedAt": lambda m, c, rec: rec.received,
    "size": lambda m, c, rec: rec.size,
    "from": _text(lambda rec: display_key(rec.sender)),
    "to": _text(lambda rec: display_key(rec.to)),
    "subject": _text(lambda rec: base_subject(rec.subject)),
    "sentAt": lambda m, c, rec: rec.sent_at if rec.sent_at is not None else rec.received,
    "hasKeyword": lambda m, c, rec: _keyword_of(c) in rec.keywords,
    "allInThreadHaveKeyword": lambda m, c, rec: all(
        _keyword_of(c) in k for k in m.thread_keywords(rec)
    ),
    "someInThreadHaveKeyword": lambda m, c, rec: any(
        _keyword_of(c) in k for k in m.thread_keywords(rec)
    ),
}
SORTABLE = tuple(SORTS)
NEEDS_KEYWORD = ("hasKeyword", "allInThreadHaveKeyword", "someInThreadHaveKeyword")


def sort_key(index: Index, sort: list[Comparator]) -> Callable[[EmailRecord], tuple[Any, ...]]:
    matcher = Matcher(index)
    values = [(SORTS[c.property], c) for c in sort]

    def key(rec: EmailRecord) -> tuple[Any, ...]:
        parts: list[Any] = []
        for value, comparator in values:
            item = value(matcher, comparator, rec)
            parts.append(item if comparator.is_ascending else Descending(item))
        # Stable and deterministic after the comparators: newest first, then id.
        parts += [Descending(rec.received), rec.id]
        return tuple(parts)

    return key
