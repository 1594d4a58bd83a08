"""Running Email queries, and keeping their results: an index scan through the
compiled filter (mail/email_filter.py); a search streamed from the full-text
index in receivedAt order, read only as far as the client looks; and a cache of
recent results carried across index changes (RFC 8621 §4.4, §4.5)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson

from maildir_jmap.core.query import Comparator
from maildir_jmap.mail.email_filter import FULL_TEXT, Matcher, sort_key, uses_full_text
from maildir_jmap.mail.email_results import LazyIds, OrderedResult, by_received, collapsed
from maildir_jmap.store.account import Account
from maildir_jmap.store.index import EMAIL, THREAD, Index
from maildir_jmap.store.records import EmailRecord
from maildir_jmap.store.search import match_expression


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
        keys_known = index.reborn <= since
        ids.update(index, Matcher(index, account).compile(filter_), threads, emails, keys_known)
        return True

    def put(self, index: Index, key: str, ids: Sequence[str], filter_: Any) -> None:
        self.results[key] = (index.modseq, ids, filter_)
        while len(self.results) > self.size:
            del self.results[next(iter(self.results))]


def query_key(filter_: Any, sort: list[Comparator], collapse: bool) -> str:
    """What tells one query from another in the cache."""
    return orjson.dumps(
        [
            filter_,
            [(c.property, c.is_ascending, c.collation, dict(c.extra)) for c in sort],
            collapse,
        ],
        option=orjson.OPT_SORT_KEYS,
    ).decode()


def cached_query(
    account: Account, filter_: Any, sort: list[Comparator], collapse: bool
) -> Sequence[str]:
    index = account.index
    if uses_full_text(filter_):
        account.sync_search()  # before the cache: a synced search can change results
    cache = account.caches.setdefault("email-query", QueryCache())
    assert isinstance(cache, QueryCache)
    key = query_key(filter_, sort, collapse)
    ids = cache.get(account, key)
    if ids is None:
        ids = run_query(index, filter_, sort, collapse, account)
        cache.put(index, key, ids, filter_)
    return ids
