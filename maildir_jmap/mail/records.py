"""What the mail datatypes share: /changes over the index's change log, and the
Records base of the types kept in the account's object store."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from maildir_jmap.core.dispatch import Context
from maildir_jmap.core.errors import MethodError
from maildir_jmap.core.query import Comparator
from maildir_jmap.core.standard import Changes, compute_changes
from maildir_jmap.core.types import JSONObject
from maildir_jmap.store.account import Account
from maildir_jmap.store.index import Index
from maildir_jmap.store.objects import ObjectStore


class ChangeLog(Protocol):
    """What the Maildir index and the object store both offer /changes."""

    epoch: str
    type_modseq: dict[str, int]

    def change_log(self, type_name: str, since: int) -> list[tuple[int, str, bool, bool]]: ...


def changes_since(
    log: ChangeLog, type_name: str, since: int | None, max_changes: int | None
) -> Changes:
    """RFC 8620 §5.2 for one type from ``since`` (None: a state from another epoch
    or older than the tombstone window, so cannotCalculateChanges)."""
    if since is None:
        raise MethodError("cannotCalculateChanges", "unknown or expired state")
    return compute_changes(
        log.change_log(type_name, since),
        since,
        max_changes,
        log.type_modseq.get(type_name, 0),
        lambda modseq: f"{log.epoch}-{modseq}",
    )


def index_changes(
    index: Index, type_name: str, since_state: str, max_changes: int | None
) -> Changes:
    since = index.parse_state(since_state)
    if since is not None and since < index.floor:
        since = None
    return changes_since(index, type_name, since, max_changes)


def object_changes(
    store: ObjectStore, type_name: str, since_state: str, max_changes: int | None
) -> Changes:
    return changes_since(store, type_name, store.parse_state(type_name, since_state), max_changes)


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
