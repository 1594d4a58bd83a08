"""What the mail datatypes share: /changes over the index's change log, and the
Records base of the types kept in the account's object store."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from maildir_jmap.core.dispatch import Context
from maildir_jmap.core.errors import MethodError
from maildir_jmap.core.query import Comparator
from maildir_jmap.core.standard import Changes, compute_changes
from maildir_jmap.core.types import JSONObject
from maildir_jmap.store.account import Account
from maildir_jmap.store.index import Index
from maildir_jmap.store.objects import ObjectStore


def index_changes(
    index: Index, type_name: str, since_state: str, max_changes: int | None
) -> Changes:
    """RFC 8620 §5.2 for one type; a state from another index (another epoch) or
    older than the tombstone window is cannotCalculateChanges."""
    since = index.parse_state(since_state)
    if since is None or since < index.floor:
        raise MethodError("cannotCalculateChanges", "unknown or expired state")
    return compute_changes(
        index.change_log(type_name, since),
        since,
        max_changes,
        index.type_modseq.get(type_name, 0),
        lambda modseq: f"{index.epoch}-{modseq}",
    )


def object_changes(
    store: ObjectStore, type_name: str, since_state: str, max_changes: int | None
) -> Changes:
    """RFC 8620 §5.2 over the object store's change log."""
    since = store.parse_state(type_name, since_state)
    if since is None:
        raise MethodError("cannotCalculateChanges", "unknown or expired state")
    return compute_changes(
        store.change_log(type_name, since),
        since,
        max_changes,
        store.type_modseq.get(type_name, 0),
        lambda modseq: f"{store.epoch}-{modseq}",
    )


class ObjectRecords:
    """``core.standard.Records`` reading one type of the account's object store
    (Identity, EmailSubmission, VacationResponse); subclasses add the writes."""

    type_name = ""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.store = account.objects

    def state(self) -> str:
        return self.store.state(self.type_name)

    def records(self) -> dict[str, dict[str, Any]]:
        return {r["id"]: r for r in self.store.all(self.type_name)}

    def get(
        self, ids: Sequence[str] | None, properties: frozenset[str], options: JSONObject
    ) -> tuple[list[JSONObject], list[str]]:
        records = self.records()
        wanted = list(records) if ids is None else ids
        found = [
            {k: v for k, v in records[i].items() if k in properties} for i in wanted if i in records
        ]
        return found, [i for i in wanted if i not in records]

    def changes(self, since_state: str, max_changes: int | None) -> Changes:
        return object_changes(self.store, self.type_name, since_state, max_changes)

    def commit(self) -> None:
        self.account.commit_objects()

    def query(
        self, filter: Any, sort: list[Comparator], options: JSONObject
    ) -> Sequence[str]:  # pragma: no cover - only types that register /query override it
        raise MethodError("unknownMethod")

    def copy(
        self, ctx: Context, source: Any, creation_id: str, obj: JSONObject
    ) -> JSONObject:  # pragma: no cover - no object-store type has /copy
        raise MethodError("unknownMethod")


def matches_filter(filter: Any, condition: Callable[[JSONObject], bool]) -> bool:
    """RFC 8620 §5.5: a FilterOperator tree over ``condition`` for its leaves."""
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
