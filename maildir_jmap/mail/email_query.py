"""Email/query and Email/queryChanges (RFC 8621 §4.4, §4.5): what to ask is in
mail/email_filter.py, how it runs and is cached in mail/query_cache.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from maildir_jmap.core import standard
from maildir_jmap.core.dispatch import AccountAccess, Context, Method
from maildir_jmap.core.query import Comparator
from maildir_jmap.core.records import Changes, Handler, Kind
from maildir_jmap.core.types import ArgumentError, JSONObject, arg_bool
from maildir_jmap.mail.email import EMAIL_SPEC
from maildir_jmap.mail.email_filter import NEEDS_KEYWORD
from maildir_jmap.mail.query_cache import cached_query
from maildir_jmap.mail.records import account_of, index_changes
from maildir_jmap.store.account import Account
from maildir_jmap.store.index import EMAIL, THREAD


class EmailQueryRecords:
    """Emails of one account, queryable (core/records.py)."""

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


def records_for(ctx: Context, access: AccountAccess) -> EmailQueryRecords:
    return EmailQueryRecords(account_of(access))


def _collapse(ctx: Context, args: JSONObject, query: Handler) -> JSONObject:
    arg_bool(args, "collapseThreads", False)  # §4.4, type-checked before anything runs
    return query(ctx, args)


def methods() -> list[Method]:
    return standard.methods(
        EMAIL_SPEC, query=Kind(records_for, extra=("collapseThreads",), around=_collapse)
    )
