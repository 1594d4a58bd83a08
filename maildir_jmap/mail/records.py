"""What the mail datatypes' per-account objects share: the account behind an
``AccountAccess``, /changes over the index's or the object store's change log,
and the base of the types kept in the object store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from maildir_jmap.core.dispatch import AccountAccess
from maildir_jmap.core.errors import MethodError
from maildir_jmap.core.records import Changes, compute_changes
from maildir_jmap.core.types import JSONObject
from maildir_jmap.store.account import Account
from maildir_jmap.store.index import Index
from maildir_jmap.store.objects import ObjectStore


def account_of(access: AccountAccess) -> Account:
    """The store behind an account the core handed over (core/dispatch.py Backend)."""
    account = access.backend
    if not isinstance(account, Account):
        raise TypeError(f"account {access.account_id} has no Maildir store behind it")
    return account


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
    """Readable and Changing (core/records.py) over one type of the account's object
    store (Identity, EmailSubmission, VacationResponse); subclasses add the writes."""

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
