"""An in-memory "Todo" datatype (the example type of RFC 8620 §5.7) for testing the
generic standard methods without a store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from maildir_jmap.core import standard
from maildir_jmap.core.capabilities import CoreLimits
from maildir_jmap.core.dispatch import CORE_METHODS, AccountAccess, Context, Registry
from maildir_jmap.core.errors import MethodError, SetError, invalid_properties
from maildir_jmap.core.patch import apply_patch
from maildir_jmap.core.query import Comparator, collation_key
from maildir_jmap.core.records import Changes, TypeSpec, compute_changes
from maildir_jmap.core.types import ArgumentError, JSONObject

TODO = "https://example.com/apis/todo"
PROPERTIES = ("id", "title", "done", "priority")


@dataclass
class TodoStore:
    account_id: str = "todo"
    epoch: str = "e1"
    modseq: int = 0
    floor: int = 0  # oldest state /changes can still answer from
    records: dict[str, JSONObject] = field(default_factory=dict)
    log: dict[str, tuple[int, int, bool]] = field(
        default_factory=dict
    )  # id -> (last, created, gone)
    next_id: int = 1

    def state(self) -> str:
        return f"{self.epoch}-{self.modseq}"

    def touch(self, record_id: str, *, created: bool = False, gone: bool = False) -> None:
        self.modseq += 1
        first = self.modseq if created else self.log.get(record_id, (0, 0, False))[1]
        self.log[record_id] = (self.modseq, first, gone)


class TodoRecords:
    def __init__(self, store: TodoStore) -> None:
        self.store = store
        self.commits = 0

    def state(self) -> str:
        return self.store.state()

    def get(
        self, ids: Sequence[str] | None, properties: frozenset[str], options: JSONObject
    ) -> tuple[list[JSONObject], list[str]]:
        wanted = list(self.store.records) if ids is None else ids
        found = [
            {k: v for k, v in self.store.records[i].items() if k in properties}
            for i in wanted
            if i in self.store.records
        ]
        return found, [i for i in wanted if i not in self.store.records]

    def changes(self, since_state: str, max_changes: int | None) -> Changes:
        epoch, _, number = since_state.partition("-")
        if epoch != self.store.epoch or not number.isdigit():
            raise MethodError("cannotCalculateChanges")
        since = int(number)
        if since < self.store.floor or since > self.store.modseq:
            raise MethodError("cannotCalculateChanges")
        entries = [
            (last, rid, created > since, gone)
            for rid, (last, created, gone) in self.store.log.items()
            if last > since
        ]
        return compute_changes(
            entries, since, max_changes, self.store.modseq, lambda m: f"{self.store.epoch}-{m}"
        )

    def _validate(self, obj: JSONObject) -> JSONObject:
        bad = [k for k in obj if k not in PROPERTIES or k == "id"]
        if not isinstance(obj.get("title"), str):
            bad.append("title")
        if not isinstance(obj.get("done", False), bool):
            bad.append("done")
        if bad:
            raise invalid_properties(*sorted(set(bad)))
        return {
            "title": obj["title"],
            "done": obj.get("done", False),
            "priority": obj.get("priority", 0),
        }

    def create(self, ctx: Context, creation_id: str, obj: JSONObject) -> JSONObject:
        if obj.get("title") == "forbidden":
            raise SetError("forbidden")
        record = self._validate(obj)
        record_id = f"t{self.store.next_id}"
        self.store.next_id += 1
        self.store.records[record_id] = {"id": record_id, **record}
        self.store.touch(record_id, created=True)
        return {"id": record_id, "done": record["done"], "priority": record["priority"]}

    def update(self, ctx: Context, record_id: str, patch: JSONObject) -> JSONObject | None:
        current = self.store.records.get(record_id)
        if current is None:
            raise SetError("notFound")
        patched = apply_patch(current, patch)
        if patched.get("id") != record_id:
            raise invalid_properties("id")
        record = self._validate({k: v for k, v in patched.items() if k != "id"})
        self.store.records[record_id] = {"id": record_id, **record}
        self.store.touch(record_id)
        return None

    def destroy(self, ctx: Context, record_id: str, options: JSONObject) -> None:
        if self.store.records.pop(record_id, None) is None:
            raise SetError("notFound")
        self.store.touch(record_id, gone=True)

    def commit(self) -> None:
        self.commits += 1

    def query(self, filter: Any, sort: list[Comparator], options: JSONObject) -> list[str]:
        def matches(record: JSONObject, f: Any) -> bool:
            if f is None:
                return True
            if "operator" in f:
                results = [matches(record, c) for c in f["conditions"]]
                return {"AND": all, "OR": any, "NOT": lambda r: not any(r)}[f["operator"]](results)
            return all(
                (k == "done" and record["done"] == v) or (k == "title" and v in record["title"])
                for k, v in f.items()
            )

        found = [r for r in self.store.records.values() if matches(r, filter)]
        found.sort(key=lambda r: int(r["id"][1:]))
        for comparator in reversed(sort):
            key = comparator.property
            if key == "title":
                fold = collation_key(comparator.collation)
                found.sort(key=lambda r: fold(r["title"]), reverse=not comparator.is_ascending)
            else:
                found.sort(key=lambda r: r[key], reverse=not comparator.is_ascending)
        return [r["id"] for r in found]

    def related_changes(self, since_state: str, options: JSONObject) -> set[str]:
        return set()

    def copy(self, ctx: Context, source: Any, creation_id: str, obj: JSONObject) -> JSONObject:
        original = source.store.records.get(obj["id"])
        if original is None:
            raise SetError("notFound")
        merged = {**original, **{k: v for k, v in obj.items() if k != "id"}}
        return self.create(ctx, creation_id, {k: v for k, v in merged.items() if k != "id"})


def check_condition(condition: JSONObject) -> None:
    for key, value in condition.items():
        if key == "done" and not isinstance(value, bool):
            raise ArgumentError("done must be a Boolean")
        if key == "title" and not isinstance(value, str):
            raise ArgumentError("title must be a String")
        if key not in ("done", "title"):
            raise MethodError("unsupportedFilter", f"cannot filter on {key!r}")


def records_for(ctx: Context, access: AccountAccess) -> TodoRecords:
    store = access.backend
    assert isinstance(store, TodoStore)
    return TodoRecords(store)


SPEC = TypeSpec(
    name="Todo",
    capability=TODO,
    is_property=lambda p: p in PROPERTIES,
    default_properties=PROPERTIES,
    check_condition=check_condition,
    sortable=("title", "priority", "done"),
    max_query_limit=100,
)


def registry() -> Registry:
    return Registry(
        [
            *CORE_METHODS,
            *standard.methods(
                SPEC,
                get=records_for,
                changes=records_for,
                set=records_for,
                query=records_for,
                copy=records_for,
            ),
        ]
    )


def context(
    *stores: TodoStore, read_only: bool = False, limits: CoreLimits | None = None
) -> Context:
    accounts = {
        f"a{n}": AccountAccess(f"a{n}", f"account {n}", {TODO: {}}, True, read_only, store)
        for n, store in enumerate(stores or (TodoStore(),), start=1)
    }
    return Context(username="alice", accounts=accounts, limits=limits or CoreLimits())
