"""Mailbox (RFC 8621 §2): get, changes, query, queryChanges. /set, and the
declaration of all the Mailbox methods, are in mailbox_set.py.

A Mailbox is a folder of the user's Maildir (or a parent level that has no
folder of its own); its id, role and sortOrder live in the index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from maildir_jmap.core.capabilities import MAIL
from maildir_jmap.core.dispatch import AccountAccess, Context
from maildir_jmap.core.errors import MethodError
from maildir_jmap.core.query import Comparator, Descending, collation_key, matches_filter
from maildir_jmap.core.records import Changes, Handler, TypeSpec
from maildir_jmap.core.types import ArgumentError, JSONObject, arg_bool, is_id
from maildir_jmap.mail.records import account_of, index_changes
from maildir_jmap.store.account import Account
from maildir_jmap.store.folders import parent_levels
from maildir_jmap.store.index import COUNT_PROPERTIES, MAILBOX, Index
from maildir_jmap.store.records import MailboxRecord

PROPERTIES = (
    "id",
    "name",
    "parentId",
    "role",
    "sortOrder",
    "totalEmails",
    "unreadEmails",
    "totalThreads",
    "unreadThreads",
    "myRights",
    "isSubscribed",
)
RIGHTS = (
    "mayReadItems",
    "mayAddItems",
    "mayRemoveItems",
    "maySetSeen",
    "maySetKeywords",
    "mayCreateChild",
    "mayRename",
    "mayDelete",
    "maySubmit",
)
INBOX_NAME = "Inbox"


def mailbox_name(rec: MailboxRecord) -> str:
    return rec.levels[-1] if rec.levels else INBOX_NAME


def parent_id(index: Index, rec: MailboxRecord, layout_directory: Any) -> str | None:
    if len(rec.levels) <= 1:
        return None  # INBOX and top-level folders
    return index.by_directory.get(layout_directory(parent_levels(rec.levels)))


class Counts:
    """Per-mailbox counts (RFC 8621 §2), computed in one pass over the Emails and
    cached until the index changes."""

    def __init__(self) -> None:
        self.modseq = -1
        self.values: dict[str, tuple[int, int, int, int]] = {}

    def get(self, index: Index) -> dict[str, tuple[int, int, int, int]]:
        if self.modseq != index.modseq:
            self.values = compute_counts(index)
            self.modseq = index.modseq
        return self.values


def compute_counts(index: Index) -> dict[str, tuple[int, int, int, int]]:
    """(totalEmails, unreadEmails, totalThreads, unreadThreads) per mailbox. Unread
    means neither $seen nor $draft; for unreadThreads, Emails in the trash count
    only for the trash and are ignored elsewhere (RFC 8621 §2)."""
    trash = next((m.id for m in index.mailboxes.values() if m.role == "trash"), None)
    total: dict[str, int] = {}
    unread: dict[str, int] = {}
    total_threads: dict[str, int] = {}
    unread_threads: dict[str, int] = {}
    emails = index.emails
    for thread in index.threads.values():
        boxes: set[str] = set()
        outside_unread = trash_unread = False
        outside_boxes: set[str] = set()
        in_trash = False
        for email_id in thread.email_ids:
            email = emails.get(email_id)
            if email is None:
                continue
            mailbox_ids = email.mailbox_ids
            is_unread = "$seen" not in email.keywords and "$draft" not in email.keywords
            for mailbox_id in mailbox_ids:
                total[mailbox_id] = total.get(mailbox_id, 0) + 1
                if is_unread:
                    unread[mailbox_id] = unread.get(mailbox_id, 0) + 1
            boxes |= mailbox_ids
            if trash is not None and trash in mailbox_ids:
                in_trash = True
                trash_unread = trash_unread or is_unread
            else:
                outside_boxes |= mailbox_ids
                outside_unread = outside_unread or is_unread
        for mailbox_id in boxes:
            total_threads[mailbox_id] = total_threads.get(mailbox_id, 0) + 1
        if outside_unread:
            for mailbox_id in outside_boxes - {trash}:
                unread_threads[mailbox_id] = unread_threads.get(mailbox_id, 0) + 1
        if in_trash and trash_unread and trash is not None:
            unread_threads[trash] = unread_threads.get(trash, 0) + 1
    return {
        m: (total.get(m, 0), unread.get(m, 0), total_threads.get(m, 0), unread_threads.get(m, 0))
        for m in index.mailboxes
    }


def counts_for(account: Account) -> dict[str, tuple[int, int, int, int]]:
    cache = account.caches.setdefault("mailbox-counts", Counts())
    assert isinstance(cache, Counts)
    return cache.get(account.index)


def rights(rec: MailboxRecord, read_only: bool) -> dict[str, bool]:
    """Everything is allowed on one's own Maildir, except renaming or deleting
    INBOX (RFC 8621 §2; IMAP forbids it too) and filing into a parent level that
    has no folder of its own (IMAP's \\Noselect)."""
    if read_only:
        return {right: right == "mayReadItems" for right in RIGHTS}
    granted = dict.fromkeys(RIGHTS, True)
    if not rec.levels:
        granted["mayRename"] = granted["mayDelete"] = False
    if not rec.selectable:
        granted["mayAddItems"] = granted["maySubmit"] = False
    return granted


def to_json(account: Account, rec: MailboxRecord, read_only: bool) -> JSONObject:
    counts = counts_for(account).get(rec.id, (0, 0, 0, 0))
    return {
        "id": rec.id,
        "name": mailbox_name(rec),
        "parentId": parent_id(account.index, rec, account.layout.directory),
        "role": rec.role,
        "sortOrder": rec.sort_order,
        "totalEmails": counts[0],
        "unreadEmails": counts[1],
        "totalThreads": counts[2],
        "unreadThreads": counts[3],
        "myRights": rights(rec, read_only),
        "isSubscribed": rec.subscribed,
    }


class MailboxRecords:
    """Mailboxes of one account: readable, changing, queryable (core/records.py)."""

    def __init__(self, account: Account, read_only: bool) -> None:
        self.account = account
        self.index = account.index
        self.read_only = read_only

    def state(self) -> str:
        return self.index.state(MAILBOX)

    def get(
        self, ids: Sequence[str] | None, properties: frozenset[str], options: JSONObject
    ) -> tuple[list[JSONObject], list[str]]:
        records = self.index.mailboxes
        wanted = list(records) if ids is None else ids
        found = []
        for mailbox_id in wanted:
            rec = records.get(mailbox_id)
            if rec is not None:
                full = to_json(self.account, rec, self.read_only)
                found.append({k: v for k, v in full.items() if k in properties})
        return found, [i for i in wanted if i not in records]

    def changes(self, since_state: str, max_changes: int | None) -> Changes:
        return index_changes(self.index, MAILBOX, since_state, max_changes)

    def related_changes(self, since_state: str, options: JSONObject) -> set[str]:
        """Under sortAsTree or filterAsTree a Mailbox moves (or drops out) with an
        ancestor that changed: every descendant of a changed Mailbox."""
        if not (options.get("sortAsTree") or options.get("filterAsTree")):
            return set()
        delta = index_changes(self.index, MAILBOX, since_state, None)
        changed = {*delta.created, *delta.updated, *delta.destroyed}
        records = self.index.mailboxes
        directory = self.account.layout.directory
        views = {m: {"parentId": parent_id(self.index, r, directory)} for m, r in records.items()}
        return {m for m in records if changed.intersection(_chain(m, views)[:-1])}

    def query(self, filter: Any, sort: list[Comparator], options: JSONObject) -> list[str]:
        records = self.index.mailboxes
        views = {m: to_json(self.account, r, self.read_only) for m, r in records.items()}
        matches = {m for m, view in views.items() if _matches(view, filter)}
        if options.get("filterAsTree"):
            matches = {m for m in matches if _ancestors_in(m, views, matches)}
        keys = {m: _sort_key(views[m], sort) for m in matches}
        if options.get("sortAsTree"):
            chains = {m: _chain(m, views) for m in matches}
            ordered = sorted(matches, key=lambda m: [_sort_key(views[a], sort) for a in chains[m]])
        else:
            ordered = sorted(matches, key=lambda m: keys[m])
        return ordered


def _chain(mailbox_id: str, views: dict[str, JSONObject]) -> list[str]:
    """Ancestors from the top down to the mailbox itself."""
    chain = [mailbox_id]
    seen = {mailbox_id}
    parent = views[mailbox_id]["parentId"]
    while parent is not None and parent in views and parent not in seen:
        chain.append(parent)
        seen.add(parent)
        parent = views[parent]["parentId"]
    return chain[::-1]


def _ancestors_in(mailbox_id: str, views: dict[str, JSONObject], matches: set[str]) -> bool:
    return all(a in matches for a in _chain(mailbox_id, views)[:-1])


def _sort_key(view: JSONObject, sort: list[Comparator]) -> tuple[Any, ...]:
    """Comparators in order, then name and id so the order is stable (§5.5)."""
    key: list[Any] = []
    for comparator in sort:
        if comparator.property == "name":
            value: Any = collation_key(comparator.collation)(view["name"])
        else:
            value = view["sortOrder"]
        key.append(Descending(value) if not comparator.is_ascending else value)
    key += [view["sortOrder"], collation_key(None)(view["name"]), view["id"]]
    return tuple(key)


def _matches(view: JSONObject, filter: Any) -> bool:
    return matches_filter(filter, lambda condition: _condition(view, condition))


def _condition(view: JSONObject, filter: JSONObject) -> bool:
    for key, value in filter.items():
        if key == "parentId" and view["parentId"] != value:
            return False
        if key == "name" and value.casefold() not in view["name"].casefold():
            return False
        if key == "role" and view["role"] != value:
            return False
        if key == "hasAnyRole" and (view["role"] is not None) != value:
            return False
        if key == "isSubscribed" and view["isSubscribed"] != value:
            return False
    return True


def check_condition(condition: JSONObject) -> None:
    """RFC 8621 §2.3 FilterCondition."""
    for key, value in condition.items():
        if key == "parentId":
            if value is not None and not is_id(value):
                raise ArgumentError("parentId must be an Id or null")
        elif key == "name":
            if not isinstance(value, str):
                raise ArgumentError("name must be a String")
        elif key == "role":
            if value is not None and not isinstance(value, str):
                raise ArgumentError("role must be a String or null")
        elif key in ("hasAnyRole", "isSubscribed"):
            if not isinstance(value, bool):
                raise ArgumentError(f"{key} must be a Boolean")
        else:
            raise MethodError("unsupportedFilter", f"Mailbox cannot be filtered by {key!r}")


def records_for(ctx: Context, access: AccountAccess) -> MailboxRecords:
    return MailboxRecords(account_of(access), access.is_read_only)


SPEC = TypeSpec(
    name="Mailbox",
    capability=MAIL,
    is_property=lambda p: p in PROPERTIES,
    default_properties=PROPERTIES,
    check_condition=check_condition,
    sortable=("sortOrder", "name"),
)
TREE_OPTIONS = ("sortAsTree", "filterAsTree")


def updated_properties(ctx: Context, args: JSONObject, changes: Handler) -> JSONObject:
    """RFC 8621 §2.2: Mailbox/changes adds ``updatedProperties``, the count
    properties when nothing else changed on the updated Mailboxes since the old
    state."""
    response = changes(ctx, args)
    account = account_of(ctx.account(response["accountId"]))
    since = account.index.parse_state(response["oldState"])
    updated = [account.index.mailboxes.get(m) for m in response["updated"]]
    # Null unless only counts changed: a Mailbox created or destroyed in the same
    # window (or any other property changed) means the client must refetch.
    counts_only = (
        since is not None
        and bool(updated)
        and not response["created"]
        and not response["destroyed"]
        and all(rec is not None and rec.props_modseq <= since for rec in updated)
    )
    response["updatedProperties"] = list(COUNT_PROPERTIES) if counts_only else None
    return response


def tree_options(ctx: Context, args: JSONObject, query: Handler) -> JSONObject:
    """RFC 8621 §2.3: ``sortAsTree`` and ``filterAsTree``, type-checked before the
    query runs."""
    for name in TREE_OPTIONS:
        arg_bool(args, name, False)
    return query(ctx, args)
