"""Email/query and Email/queryChanges (RFC 8621 §4.4, §4.5).

Most conditions are answered from the index; text, body, cc and bcc from the
SQLite FTS5 index (store/search.py, synced before such a query runs), and
header by reading the candidates' header sections.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson

from maildir_jmap.core import standard
from maildir_jmap.core.capabilities import MAIL
from maildir_jmap.core.dispatch import Context, Method
from maildir_jmap.core.errors import MethodError
from maildir_jmap.core.query import Comparator, Descending, collation_key
from maildir_jmap.core.standard import Changes, TypeSpec
from maildir_jmap.core.types import (
    ArgumentError,
    JSONObject,
    arg_bool,
    is_id,
    is_unsigned_int,
    parse_utc_date,
)
from maildir_jmap.mail.common import index_changes
from maildir_jmap.mail.email_results import LazyIds, OrderedResult, by_received, collapsed
from maildir_jmap.mime.headers import as_text
from maildir_jmap.mime.parse import split_head
from maildir_jmap.store.account import Account
from maildir_jmap.store.index import EMAIL, THREAD, EmailRecord, Index
from maildir_jmap.store.keywords import is_keyword
from maildir_jmap.store.search import match_expression

SORTABLE = (
    "receivedAt", "size", "from", "to", "subject", "sentAt",
    "hasKeyword", "allInThreadHaveKeyword", "someInThreadHaveKeyword",
)  # fmt: skip
NEEDS_KEYWORD = ("hasKeyword", "allInThreadHaveKeyword", "someInThreadHaveKeyword")
FULL_TEXT = {  # condition -> search index columns (None: all of them)
    "text": None,
    "body": ("body",),
    "cc": ("cc",),
    "bcc": ("bcc",),
}
MAX_LIMIT = 10_000


def _check_keyword(value: object) -> None:
    if not is_keyword(value):
        raise ArgumentError(f"not a keyword: {value!r}")


def check_condition(condition: JSONObject) -> None:
    """RFC 8621 §4.4.1 FilterCondition, type-checked."""
    for key, value in condition.items():
        if key == "inMailbox":
            if not is_id(value):
                raise ArgumentError("inMailbox must be an Id")
        elif key == "inMailboxOtherThan":
            if not isinstance(value, list) or not all(is_id(v) for v in value):
                raise ArgumentError("inMailboxOtherThan must be an array of Ids")
        elif key in ("before", "after"):
            parse_utc_date(value)
        elif key in ("minSize", "maxSize"):
            if not is_unsigned_int(value):
                raise ArgumentError(f"{key} must be an UnsignedInt")
        elif key in (
            "allInThreadHaveKeyword",
            "someInThreadHaveKeyword",
            "noneInThreadHaveKeyword",
            "hasKeyword",
            "notKeyword",
        ):
            _check_keyword(value)
        elif key == "hasAttachment":
            if not isinstance(value, bool):
                raise ArgumentError("hasAttachment must be a Boolean")
        elif key in ("from", "to", "subject") or key in FULL_TEXT:
            if not isinstance(value, str):
                raise ArgumentError(f"{key} must be a String")
        elif key == "header":
            if (
                not isinstance(value, list)
                or not 1 <= len(value) <= 2
                or not all(isinstance(v, str) for v in value)
            ):
                raise ArgumentError("header must be [name] or [name, value]")
        else:
            raise MethodError("unsupportedFilter", f"Email cannot be filtered by {key!r}")


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


def uses_full_text(filter_: Any) -> bool:
    if not isinstance(filter_, dict):
        return False
    if "operator" in filter_:
        return any(uses_full_text(c) for c in filter_["conditions"])
    return any(key in FULL_TEXT for key in filter_)


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

    def _thread_keywords(self, rec: EmailRecord) -> list[frozenset[str]]:
        thread = self.index.threads.get(rec.thread_id)
        members = thread.email_ids if thread else [rec.id]
        return [self.index.emails[m].keywords for m in members if m in self.index.emails]

    def compile(self, filter_: Any) -> Callable[[EmailRecord], bool]:
        if filter_ is None:
            return lambda rec: True
        if "operator" in filter_:
            parts = [self.compile(c) for c in filter_["conditions"]]
            if filter_["operator"] == "AND":
                return lambda rec: all(p(rec) for p in parts)
            if filter_["operator"] == "OR":
                return lambda rec: any(p(rec) for p in parts)
            return lambda rec: not any(p(rec) for p in parts)
        tests = [self._condition(k, v) for k, v in filter_.items()]
        return lambda rec: all(t(rec) for t in tests)

    def _condition(self, key: str, value: Any) -> Callable[[EmailRecord], bool]:
        if key == "inMailbox":
            return lambda rec: value in rec.mailbox_ids
        if key == "inMailboxOtherThan":
            excluded = set(value)
            return lambda rec: bool(rec.mailbox_ids - excluded)
        if key in ("before", "after"):
            moment = parse_utc_date(value).timestamp()
            if key == "before":
                return lambda rec: rec.received < moment
            return lambda rec: rec.received >= moment
        if key == "minSize":
            return lambda rec: rec.size >= value
        if key == "maxSize":
            return lambda rec: rec.size < value
        if key == "hasKeyword":
            keyword = value.lower()
            return lambda rec: keyword in rec.keywords
        if key == "notKeyword":
            keyword = value.lower()
            return lambda rec: keyword not in rec.keywords
        if key == "allInThreadHaveKeyword":
            keyword = value.lower()
            return lambda rec: all(keyword in k for k in self._thread_keywords(rec))
        if key == "someInThreadHaveKeyword":
            keyword = value.lower()
            return lambda rec: any(keyword in k for k in self._thread_keywords(rec))
        if key == "noneInThreadHaveKeyword":
            keyword = value.lower()
            return lambda rec: not any(keyword in k for k in self._thread_keywords(rec))
        if key == "hasAttachment":
            return lambda rec: rec.has_attachment == value
        if key in FULL_TEXT:
            assert self.account is not None
            expression = match_expression(value, FULL_TEXT[key])
            if expression is None or self.streamed:
                return lambda rec: True
            hits = self.hits(expression)
            return lambda rec: rec.id in hits
        if key == "header":
            return self._header(value)
        needle = value.casefold()
        if key == "from":
            return lambda rec: needle in rec.sender.casefold()
        if key == "to":
            return lambda rec: needle in rec.to.casefold()
        return lambda rec: needle in rec.subject.casefold()  # subject

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

    def _header(self, value: list[str]) -> Callable[[EmailRecord], bool]:
        """RFC 8621 §4.4.1 header: the field is present, or its Text form contains
        the value (case-insensitively); read from the message's header section."""
        name = value[0].lower()
        needle = value[1].casefold() if len(value) == 2 else None
        account = self.account

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


def sort_key(index: Index, sort: list[Comparator]) -> Callable[[EmailRecord], tuple[Any, ...]]:
    matcher = Matcher(index)

    def value(rec: EmailRecord, comparator: Comparator) -> Any:
        prop = comparator.property
        if prop == "receivedAt":
            return rec.received
        if prop == "size":
            return rec.size
        if prop == "sentAt":
            return rec.sent_at if rec.sent_at is not None else rec.received
        if prop in ("from", "to", "subject"):
            text = {"from": display_key(rec.sender), "to": display_key(rec.to)}.get(
                prop, base_subject(rec.subject)
            )
            return collation_key(comparator.collation)(text)
        keyword = str(comparator.extra["keyword"]).lower()
        if prop == "hasKeyword":
            return keyword in rec.keywords
        thread = matcher._thread_keywords(rec)
        if prop == "allInThreadHaveKeyword":
            return all(keyword in k for k in thread)
        return any(keyword in k for k in thread)

    def key(rec: EmailRecord) -> tuple[Any, ...]:
        parts: list[Any] = []
        for comparator in sort:
            item = value(rec, comparator)
            parts.append(item if comparator.is_ascending else Descending(item))
        # Stable and deterministic after the comparators: newest first, then id.
        parts += [Descending(rec.received), rec.id]
        return tuple(parts)

    return key


def _fast_key(sort: list[Comparator]) -> tuple[Callable[[EmailRecord], Any], bool] | None:
    """The common list-view sorts as plain numeric keys (no per-record objects)."""
    if len(sort) == 1 and sort[0].property in ("receivedAt", "size"):
        prop = "received" if sort[0].property == "receivedAt" else "size"
        if sort[0].is_ascending:
            return (lambda rec: (getattr(rec, prop), rec.received, rec.id)), False
        return (lambda rec: (getattr(rec, prop), rec.received, rec.id)), True
    return None


def streamable(filter_: Any, sort: list[Comparator]) -> tuple[str, bool] | None:
    """(FTS5 expression, newest first) when the search index can hand out this
    query's matches already in order: one condition object with full-text terms,
    sorted by receivedAt alone (a search's usual list view)."""
    if not isinstance(filter_, dict) or "operator" in filter_:
        return None
    if len(sort) != 1 or sort[0].property != "receivedAt":
        return None
    parts = [match_expression(v, FULL_TEXT[k]) for k, v in filter_.items() if k in FULL_TEXT]
    expressions = [p for p in parts if p is not None]
    if not expressions:
        return None
    return " AND ".join(f"({e})" for e in expressions), not sort[0].is_ascending


def run_query(
    index: Index,
    filter_: Any,
    sort: list[Comparator],
    collapse: bool,
    account: Account | None = None,
) -> Sequence[str]:
    if account is not None and uses_full_text(filter_):
        account.sync_search()
        ordered = streamable(filter_, sort)
        if ordered is not None:
            return _streamed(index, account, filter_, *ordered, collapse)
    matcher = Matcher(index, account)
    predicate = matcher.compile(filter_)
    candidates = matcher.required(filter_)
    emails = index.emails
    pool = emails.values() if candidates is None else (emails[i] for i in candidates if i in emails)
    found = [rec for rec in pool if predicate(rec)]
    if candidates is None and by_received(sort):
        return OrderedResult.build(found, not sort[0].is_ascending, collapse)
    fast = _fast_key(sort)
    if fast is not None:
        found.sort(key=fast[0], reverse=fast[1])
    else:
        found.sort(key=sort_key(index, sort))
    return [rec.id for rec in collapsed(found, collapse)]


def _streamed(
    index: Index,
    account: Account,
    filter_: Any,
    expression: str,
    newest_first: bool,
    collapse: bool,
) -> Sequence[str]:
    """Matches read from the search index in receivedAt order, only as far as the
    caller looks (a first page of 50 reads a few hundred hits, not 95,000)."""
    predicate = Matcher(index, account, streamed=True).compile(filter_)
    emails = index.emails

    def records() -> Iterator[EmailRecord]:
        for email_id in account.search.stream(expression, newest_first):
            rec = emails.get(email_id)
            if rec is not None and predicate(rec):
                yield rec

    return LazyIds(rec.id for rec in collapsed(records(), collapse))


class QueryCache:
    """Recent query results. A result in receivedAt order is carried across index
    changes by re-placing the Emails they touched (``OrderedResult.update``); any
    other result is valid while the index's modseq stands still."""

    MAX_CHANGED = 2000  # more changed Emails than this: recomputing is as cheap

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self.results: dict[str, tuple[int, Sequence[str], Any]] = {}  # key -> (modseq, ids, filter)

    def get(self, account: Account, key: str) -> Sequence[str] | None:
        index = account.index
        entry = self.results.pop(key, None)
        if entry is None:
            return None
        modseq, ids, filter_ = entry
        stale = modseq != index.modseq
        if stale and not (
            isinstance(ids, OrderedResult) and self._carry(account, ids, filter_, modseq)
        ):
            return None
        self.results[key] = (index.modseq, ids, filter_)  # most recently used last
        return ids

    def _carry(self, account: Account, ids: OrderedResult, filter_: Any, since: int) -> bool:
        index = account.index
        changed = index.change_log(EMAIL, since)
        if len(changed) > self.MAX_CHANGED or since < index.floor:
            return False
        emails = {entry[1] for entry in changed}
        threads = {entry[1] for entry in index.change_log(THREAD, since)}
        for email_id in emails:
            rec = index.emails.get(email_id)
            if rec is not None:
                threads.add(rec.thread_id)
        ids.update(index, Matcher(index, account).compile(filter_), threads, emails)
        return True

    def put(self, index: Index, key: str, ids: Sequence[str], filter_: Any) -> None:
        self.results[key] = (index.modseq, ids, filter_)
        while len(self.results) > self.size:
            del self.results[next(iter(self.results))]


def cached_query(
    account: Account, filter_: Any, sort: list[Comparator], collapse: bool
) -> Sequence[str]:
    index = account.index
    if uses_full_text(filter_):
        account.sync_search()  # before the cache: a synced search can change results
    cache = account.caches.setdefault("email-query", QueryCache())
    assert isinstance(cache, QueryCache)
    key = orjson.dumps(
        [
            filter_,
            [(c.property, c.is_ascending, c.collation, dict(c.extra)) for c in sort],
            collapse,
        ],
        option=orjson.OPT_SORT_KEYS,
    ).decode()
    ids = cache.get(account, key)
    if ids is None:
        ids = run_query(index, filter_, sort, collapse, account)
        cache.put(index, key, ids, filter_)
    return ids


class EmailQueryRecords:
    """The query side of Email for ``core.standard.query``/``query_changes``."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.index = account.index

    def state(self) -> str:
        return self.index.state(EMAIL)

    def changes(self, since_state: str, max_changes: int | None) -> Changes:
        return index_changes(self.index, EMAIL, since_state, max_changes)

    def query(self, filter_: Any, sort: list[Comparator], options: JSONObject) -> Sequence[str]:
        for comparator in sort:
            if comparator.property in NEEDS_KEYWORD and "keyword" not in comparator.extra:
                raise ArgumentError(f"sorting by {comparator.property} needs a keyword")
        collapse = bool(options.get("collapseThreads"))
        return cached_query(self.account, filter_, sort, collapse)

    def related_changes(self, since_state: str, options: JSONObject) -> set[str]:
        """With collapseThreads, every member of a Thread that changed, or that holds
        an Email that changed: which member represents the Thread may have moved
        although the member itself did not (RFC 8621 §4.5), e.g. when the newest
        one is filed elsewhere and an older one now stands for the Thread."""
        if not options.get("collapseThreads"):
            return set()
        index = self.index
        threads = index_changes(index, THREAD, since_state, None)
        emails = index_changes(index, EMAIL, since_state, None)
        thread_ids = {*threads.created, *threads.updated}
        for email_id in [*emails.created, *emails.updated]:
            rec = index.emails.get(email_id)
            if rec is not None:
                thread_ids.add(rec.thread_id)
        out: set[str] = set()
        for thread_id in thread_ids:
            thread = index.threads.get(thread_id)
            out.update(thread.email_ids if thread else ())
        return out


QUERY_SPEC = TypeSpec(
    name="Email",
    capability=MAIL,
    records=lambda ctx, access: EmailQueryRecords(access.backend),  # type: ignore[arg-type,return-value]
    is_property=lambda p: False,
    default_properties=(),
    check_condition=check_condition,
    sortable=SORTABLE,
    comparator_args={"keyword": is_keyword},
    max_query_limit=MAX_LIMIT,
)


def _collapse(args: JSONObject) -> None:
    arg_bool(args, "collapseThreads", False)  # type-checked before anything runs


def email_query(ctx: Context, args: JSONObject) -> JSONObject:
    _collapse(args)
    return standard.query(ctx, args, QUERY_SPEC, extra=("collapseThreads",))


def email_query_changes(ctx: Context, args: JSONObject) -> JSONObject:
    _collapse(args)
    return standard.query_changes(ctx, args, QUERY_SPEC, extra=("collapseThreads",))


def methods() -> list[Method]:
    return [
        Method("Email/query", MAIL, email_query),
        Method("Email/queryChanges", MAIL, email_query_changes),
    ]
