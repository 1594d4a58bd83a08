"""What a datatype supplies the standard methods (RFC 8620 §5): static facts in a
``TypeSpec``, and per account an object for each kind of method it offers, each
kind with a protocol of its own. A type that lacks a method does not declare it;
nothing here is ever a stub.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from maildir_jmap.core.dispatch import AccountAccess, Context
from maildir_jmap.core.errors import MethodError
from maildir_jmap.core.query import Comparator, ConditionCheck
from maildir_jmap.core.types import JSONObject, Serialized, arg_id


@dataclass(frozen=True)
class Changes:
    """The result of a /changes computation (§5.2)."""

    old_state: str
    new_state: str
    has_more: bool
    created: list[str]
    updated: list[str]
    destroyed: list[str]


class Readable(Protocol):
    """/get (§5.1)."""

    def state(self) -> str: ...

    def get(
        self, ids: Sequence[str] | None, properties: frozenset[str], options: JSONObject
    ) -> tuple[Sequence[JSONObject | Serialized], list[str]]: ...


class Changing(Protocol):
    """/changes (§5.2)."""

    def state(self) -> str: ...

    def changes(self, since_state: str, max_changes: int | None) -> Changes: ...


class Operations(Protocol):
    """The operations of a /set (§5.3): each on its own, then one commit whatever
    happened."""

    def create(self, ctx: Context, creation_id: str, obj: JSONObject) -> JSONObject: ...

    def update(self, ctx: Context, record_id: str, patch: JSONObject) -> JSONObject | None: ...

    def destroy(self, ctx: Context, record_id: str, options: JSONObject) -> None: ...

    def commit(self) -> None: ...


class Writable(Operations, Protocol):
    """/set (§5.3) of a type with a state."""

    def state(self) -> str: ...


class Copyable(Protocol):
    """/copy (§5.4): ``source`` is the same kind of object for the other account."""

    def state(self) -> str: ...

    def copy(
        self, ctx: Context, source: Copyable, creation_id: str, obj: JSONObject
    ) -> JSONObject: ...

    def commit(self) -> None: ...


class Queryable(Protocol):
    """/query (§5.5) and /queryChanges (§5.6), which replays the type's changes."""

    def state(self) -> str: ...

    def changes(self, since_state: str, max_changes: int | None) -> Changes: ...

    def query(
        self, filter: JSONObject | None, sort: list[Comparator], options: JSONObject
    ) -> Sequence[str]: ...

    def related_changes(self, since_state: str, options: JSONObject) -> set[str]:
        """Records whose place in the results moved without a change of their own
        (RFC 8621 §4.5: the Email representing a Thread under collapseThreads)."""
        ...


def _reject_all(_condition: JSONObject) -> None:
    raise MethodError("unsupportedFilter", "this type has no filter conditions")


@dataclass(frozen=True)
class TypeSpec:
    """Static facts about a datatype."""

    name: str  # e.g. "Mailbox"
    capability: str
    is_property: Callable[[str], bool]
    default_properties: tuple[str, ...]
    check_condition: ConditionCheck = _reject_all
    sortable: tuple[str, ...] = ()
    comparator_args: dict[str, Callable[[Any], bool]] = field(default_factory=dict)
    max_query_limit: int | None = None
    get_all_allowed: bool = True


R = TypeVar("R", covariant=True)
T = TypeVar("T")
Handler = Callable[[Context, JSONObject], JSONObject]
Around = Callable[[Context, JSONObject, Handler], JSONObject]
"""Wraps a standard method: type-checks the type's extra arguments before it
runs, or adds to its response (``next`` is the standard method)."""


@dataclass(frozen=True)
class Kind(Generic[R]):
    """How a type offers one kind of standard method: the per-account object, the
    extra arguments it takes, and what wraps the standard method, if anything."""

    records: Callable[[Context, AccountAccess], R]
    extra: tuple[str, ...] = ()
    around: Around | None = None


def records_of(ctx: Context, args: JSONObject, spec: TypeSpec, kind: Kind[T]) -> tuple[str, T]:
    """The account a call names (checked, §3.6.2) and the type's object for it."""
    account_id = arg_id(args, "accountId")
    assert account_id is not None
    return account_id, kind.records(ctx, ctx.account(account_id, spec.capability))


def options_of(args: JSONObject, extra: Sequence[str]) -> JSONObject:
    """The type's extra arguments that the call gave."""
    return {name: args[name] for name in extra if name in args}


def compute_changes(
    entries: Sequence[tuple[int, str, bool, bool]],
    since: int,
    max_changes: int | None,
    current: int,
    state_of: Callable[[int], str],
) -> Changes:
    """The /changes algorithm over a change log.

    ``entries`` are (modseq, id, created_after_since, destroyed) for every record
    whose last change is newer than ``since``, one entry per record. Records take
    one modseq each, so cutting the sorted list after ``max_changes`` entries is an
    exact intermediate state. Created-then-destroyed records are left out (§5.2
    SHOULD).
    """
    ordered = sorted(entries)
    visible = [e for e in ordered if not (e[2] and e[3])]
    has_more = max_changes is not None and len(visible) > max_changes
    if has_more:
        assert max_changes is not None
        visible = visible[:max_changes]
        upto = visible[-1][0] if visible else since
    else:
        upto = current
    created = [i for _, i, new, gone in visible if new and not gone]
    updated = [i for _, i, new, gone in visible if not new and not gone]
    destroyed = [i for _, i, new, gone in visible if gone and not new]
    return Changes(state_of(since), state_of(upto), has_more, created, updated, destroyed)
