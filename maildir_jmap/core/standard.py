"""Generic /get /changes /set /copy /query /queryChanges (RFC 8620 §5).

A datatype describes itself with a ``TypeSpec`` and supplies, per account, an
object implementing ``Records``. The functions here validate arguments, enforce
limits and the rules every type shares (ifInState, creation ids, requestTooLarge,
response shapes with every key present), and call the type only for what is
special to it. Each returns the response arguments; errors are raised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from maildir_jmap.core.dispatch import AccountAccess, Context
from maildir_jmap.core.errors import MethodError, SetError
from maildir_jmap.core.query import Comparator, ConditionCheck, parse_sort, validate_filter, window
from maildir_jmap.core.types import (
    ArgumentError,
    JSONObject,
    arg_bool,
    arg_id,
    arg_id_list,
    arg_int,
    arg_object_map,
    arg_str,
    arg_str_list,
    arg_unsigned,
    check_known,
    is_id,
)


@dataclass(frozen=True)
class Changes:
    """The result of a /changes computation (§5.2)."""

    old_state: str
    new_state: str
    has_more: bool
    created: list[str]
    updated: list[str]
    destroyed: list[str]


class Records(Protocol):
    """What one datatype offers the standard methods for one account. A type that
    lacks a method simply does not register it; these are never stubs."""

    def state(self) -> str: ...

    def get(
        self, ids: Sequence[str] | None, properties: frozenset[str], options: JSONObject
    ) -> tuple[list[JSONObject], list[str]]: ...

    def changes(self, since_state: str, max_changes: int | None) -> Changes: ...

    def create(self, ctx: Context, creation_id: str, obj: JSONObject) -> JSONObject: ...

    def update(self, ctx: Context, record_id: str, patch: JSONObject) -> JSONObject | None: ...

    def destroy(self, ctx: Context, record_id: str, options: JSONObject) -> None: ...

    def commit(self) -> None: ...

    def query(
        self, filter: JSONObject | None, sort: list[Comparator], options: JSONObject
    ) -> Sequence[str]: ...

    def copy(
        self, ctx: Context, source: Records, creation_id: str, obj: JSONObject
    ) -> JSONObject: ...


def _reject_all(_condition: JSONObject) -> None:
    raise MethodError("unsupportedFilter", "this type has no filter conditions")


@dataclass(frozen=True)
class TypeSpec:
    """Static facts about a datatype."""

    name: str  # e.g. "Mailbox"
    capability: str
    records: Callable[[Context, AccountAccess], Records]
    is_property: Callable[[str], bool]
    default_properties: tuple[str, ...]
    check_condition: ConditionCheck = _reject_all
    sortable: tuple[str, ...] = ()
    comparator_args: dict[str, Callable[[Any], bool]] = field(default_factory=dict)
    max_query_limit: int | None = None
    get_all_allowed: bool = True


def _records(ctx: Context, args: JSONObject, spec: TypeSpec) -> tuple[str, Records]:
    account_id = arg_id(args, "accountId")
    assert account_id is not None
    return account_id, spec.records(ctx, ctx.account(account_id, spec.capability))


def _options(args: JSONObject, extra: Sequence[str]) -> JSONObject:
    return {name: args[name] for name in extra if name in args}


# -- /get (§5.1) ---------------------------------------------------------------


def get(ctx: Context, args: JSONObject, spec: TypeSpec, extra: Sequence[str] = ()) -> JSONObject:
    check_known(args, ("accountId", "ids", "properties", *extra))
    account_id, records = _records(ctx, args, spec)
    ids = arg_id_list(args, "ids", allow_refs=True)
    properties = arg_str_list(args, "properties")
    if properties is None:
        wanted = frozenset(spec.default_properties)
    else:
        bad = [p for p in properties if not spec.is_property(p)]
        if bad:
            raise ArgumentError(f"unknown properties: {', '.join(bad)}")
        wanted = frozenset(properties)
    wanted |= {"id"}  # §5.1: "The id property of the object is *always* returned"
    if ids is None and not spec.get_all_allowed:
        raise MethodError("requestTooLarge", "ids must be given for this type")
    unique: list[str] | None = None
    if ids is not None:
        # Lenient (§5.1 is silent): a '#creationId' from earlier in the request is
        # accepted in place of the id, as several clients send it.
        unique = list(
            dict.fromkeys(ctx.created_ids.get(i[1:], i) if i[0] == "#" else i for i in ids)
        )
        if len(unique) > ctx.limits.maxObjectsInGet:
            raise MethodError("requestTooLarge", f"at most {ctx.limits.maxObjectsInGet} ids")
    state = records.state()
    found, not_found = records.get(unique, wanted, _options(args, extra))
    if unique is None and len(found) > ctx.limits.maxObjectsInGet:
        raise MethodError("requestTooLarge", f"more than {ctx.limits.maxObjectsInGet} records")
    return {"accountId": account_id, "state": state, "list": found, "notFound": not_found}


# -- /changes (§5.2) -----------------------------------------------------------


def changes(ctx: Context, args: JSONObject, spec: TypeSpec) -> JSONObject:
    check_known(args, ("accountId", "sinceState", "maxChanges"))
    account_id, records = _records(ctx, args, spec)
    since = arg_str(args, "sinceState")
    max_changes = arg_unsigned(args, "maxChanges", positive=True)
    assert since is not None
    result = records.changes(since, max_changes)
    return {
        "accountId": account_id,
        "oldState": result.old_state,
        "newState": result.new_state,
        "hasMoreChanges": result.has_more,
        "created": result.created,
        "updated": result.updated,
        "destroyed": result.destroyed,
    }


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


# -- /set (§5.3) ---------------------------------------------------------------


def _set_arguments(args: JSONObject, ctx: Context) -> tuple[JSONObject, JSONObject, list[str]]:
    create = arg_object_map(args, "create")
    update = arg_object_map(args, "update", refs=True)  # errata: #creationId keys allowed
    destroy = arg_id_list(args, "destroy", allow_refs=True) or []
    if len(create) + len(update) + len(destroy) > ctx.limits.maxObjectsInSet:
        raise MethodError("requestTooLarge", f"at most {ctx.limits.maxObjectsInSet} objects")
    return create, update, destroy


def _check_state(records: Records, wanted: str | None) -> str:
    state = records.state()
    if wanted is not None and wanted != state:
        raise MethodError("stateMismatch", f"current state is {state!r}")
    return state


def set_(ctx: Context, args: JSONObject, spec: TypeSpec, extra: Sequence[str] = ()) -> JSONObject:
    check_known(args, ("accountId", "ifInState", "create", "update", "destroy", *extra))
    account_id, records = _records(ctx, args, spec)
    if_in_state = arg_str(args, "ifInState", nullable=True)
    create, update, destroy = _set_arguments(args, ctx)
    old_state = _check_state(records, if_in_state)
    options = _options(args, extra)
    created: JSONObject = {}
    not_created: JSONObject = {}
    updated: JSONObject = {}
    not_updated: JSONObject = {}
    destroyed: list[str] = []
    not_destroyed: JSONObject = {}
    try:
        for creation_id in creation_order(create):
            obj = create[creation_id]
            try:
                result = records.create(ctx, creation_id, obj)
            except SetError as exc:
                not_created[creation_id] = exc.to_json()
                continue
            created[creation_id] = result
            # §5.3: a reused creation id maps to the most recently created record.
            ctx.created_ids[creation_id] = result["id"]
        for key, patch in update.items():
            record_id = _real_id(key, ctx)
            try:
                if record_id is None:
                    raise SetError("notFound", f"no record was created as {key!r}")
                updated[record_id] = records.update(ctx, record_id, patch)
            except SetError as exc:
                not_updated[record_id or key] = exc.to_json()
        for key in destroy:
            record_id = _real_id(key, ctx)
            try:
                if record_id is None:
                    raise SetError("notFound", f"no record was created as {key!r}")
                records.destroy(ctx, record_id, options)
                destroyed.append(record_id)
            except SetError as exc:
                not_destroyed[record_id or key] = exc.to_json()
    finally:
        records.commit()
    return {
        "accountId": account_id,
        "oldState": old_state,
        "newState": records.state(),
        "created": created or None,
        "updated": updated or None,
        "destroyed": destroyed or None,
        "notCreated": not_created or None,
        "notUpdated": not_updated or None,
        "notDestroyed": not_destroyed or None,
    }


def creation_order(create: JSONObject) -> list[str]:
    """The creation ids of a /set ``create`` map, ordered so that each comes after
    the creates it references by ``#creationId`` (§5.3: "the server MUST ... create
    records in an order such that references resolve"). References are found
    anywhere in an object, as values (``parentId``, ``emailId``) or as keys
    (``mailboxIds``). Otherwise the client's order is kept; the members of a real
    cycle keep it too, and the type then refuses the reference it cannot resolve."""
    depends: dict[str, set[str]] = {
        cid: {ref for ref in _references(obj) if ref in create and ref != cid}
        for cid, obj in create.items()
    }
    if not any(depends.values()):
        return list(create)
    order: list[str] = []
    placed: set[str] = set()
    pending = list(create)
    while pending:
        ready = next((cid for cid in pending if depends[cid] <= placed), None)
        if ready is None:  # a cycle: the rest in the order given
            order += pending
            break
        pending.remove(ready)
        placed.add(ready)
        order.append(ready)
    return order


def _references(value: Any) -> set[str]:
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if item.startswith("#"):
                found.add(item[1:])
        elif isinstance(item, dict):
            for key, inner in item.items():
                if key.startswith("#"):
                    found.add(key[1:])
                elif "/#" in key:  # a patch path naming a created record
                    found.add(key.rpartition("/#")[2])
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _real_id(key: str, ctx: Context) -> str | None:
    if key.startswith("#"):
        return ctx.created_ids.get(key[1:])
    return key


# -- /copy (§5.4) --------------------------------------------------------------


def copy(ctx: Context, args: JSONObject, spec: TypeSpec) -> JSONObject:
    check_known(
        args,
        (
            "fromAccountId",
            "ifFromInState",
            "accountId",
            "ifInState",
            "create",
            "onSuccessDestroyOriginal",
            "destroyFromIfInState",
        ),
    )
    from_id = arg_id(args, "fromAccountId")
    assert from_id is not None
    account_id, records = _records(ctx, args, spec)
    if from_id == account_id:
        raise ArgumentError("fromAccountId and accountId must differ")
    from_access = ctx.accounts.get(from_id)
    if from_access is None:
        raise MethodError("fromAccountNotFound")
    if spec.capability not in from_access.capabilities:
        raise MethodError("fromAccountNotSupportedByMethod")
    source = spec.records(ctx, from_access)
    if_from = arg_str(args, "ifFromInState", nullable=True)
    if_in = arg_str(args, "ifInState", nullable=True)
    create = arg_object_map(args, "create")
    destroy_original = arg_bool(args, "onSuccessDestroyOriginal", False)
    destroy_if = arg_str(args, "destroyFromIfInState", nullable=True)
    if len(create) > ctx.limits.maxObjectsInSet:
        raise MethodError("requestTooLarge", f"at most {ctx.limits.maxObjectsInSet} objects")
    for creation_id, obj in create.items():
        if not is_id(obj.get("id")):
            raise ArgumentError(f"create[{creation_id!r}] must have the 'id' to copy")
    _check_state(source, if_from)
    old_state = _check_state(records, if_in)
    created: JSONObject = {}
    not_created: JSONObject = {}
    try:
        for creation_id, obj in create.items():
            try:
                created[creation_id] = records.copy(ctx, source, creation_id, obj)
            except SetError as exc:
                not_created[creation_id] = exc.to_json()
                continue
            ctx.created_ids[creation_id] = created[creation_id]["id"]
    finally:
        records.commit()
    if destroy_original and created:
        # §5.4: an implicit Foo/set destroying the originals, after this response.
        ctx.queue_implicit(
            f"{spec.name}/set",
            {
                "accountId": from_id,
                "ifInState": destroy_if,
                "destroy": [create[c]["id"] for c in created],
            },
        )
    return {
        "fromAccountId": from_id,
        "accountId": account_id,
        "oldState": old_state,
        "newState": records.state(),
        "created": created or None,
        "notCreated": not_created or None,
    }


# -- /query (§5.5) and /queryChanges (§5.6) --------------------------------------


def _filter_and_sort(args: JSONObject, spec: TypeSpec) -> tuple[Any, list[Comparator]]:
    filter_ = args.get("filter")
    validate_filter(filter_, spec.check_condition)
    return filter_, parse_sort(args.get("sort"), spec.sortable, spec.comparator_args)


def query(ctx: Context, args: JSONObject, spec: TypeSpec, extra: Sequence[str] = ()) -> JSONObject:
    check_known(
        args,
        (
            "accountId",
            "filter",
            "sort",
            "position",
            "anchor",
            "anchorOffset",
            "limit",
            "calculateTotal",
            *extra,
        ),
    )
    account_id, records = _records(ctx, args, spec)
    filter_, sort = _filter_and_sort(args, spec)
    position = arg_int(args, "position", 0)
    anchor = arg_id(args, "anchor", nullable=True)
    anchor_offset = arg_int(args, "anchorOffset", 0)
    limit = arg_unsigned(args, "limit")
    total = arg_bool(args, "calculateTotal", False)
    state = records.state()
    ids = records.query(filter_, sort, _options(args, extra))
    win = window(
        ids,
        position=position,
        anchor=anchor,
        anchor_offset=anchor_offset,
        limit=limit,
        max_limit=spec.max_query_limit,
    )
    response: JSONObject = {
        "accountId": account_id,
        "queryState": state,
        "canCalculateChanges": True,
        "position": win.position,
        "ids": win.ids,
    }
    if total:
        response["total"] = len(ids)
    if win.limit is not None:
        response["limit"] = win.limit
    return response


def query_changes(
    ctx: Context, args: JSONObject, spec: TypeSpec, extra: Sequence[str] = ()
) -> JSONObject:
    """§5.6 from the type's change log: every record changed since the old state is
    reported removed (the server "MAY return the ids of extra Foos"), and re-added
    at its new index when it is in the results now."""
    check_known(
        args,
        (
            "accountId",
            "filter",
            "sort",
            "sinceQueryState",
            "maxChanges",
            "upToId",
            "calculateTotal",
            *extra,
        ),
    )
    account_id, records = _records(ctx, args, spec)
    filter_, sort = _filter_and_sort(args, spec)
    since = arg_str(args, "sinceQueryState")
    max_changes = arg_unsigned(args, "maxChanges", positive=True)
    up_to = arg_id(args, "upToId", nullable=True)
    total = arg_bool(args, "calculateTotal", False)
    assert since is not None
    delta = records.changes(since, None)
    options = _options(args, extra)
    ids = records.query(filter_, sort, options)
    touched = set(delta.updated) | set(delta.created)
    removed = [*delta.updated, *delta.destroyed]
    # A type may know of records whose place moved without a change of their own
    # (RFC 8621 §4.5: the Email representing a Thread under collapseThreads).
    related = getattr(records, "related_changes", None)
    if related is not None:
        for record_id in related(since, options):
            if record_id not in touched:
                removed.append(record_id)
                touched.add(record_id)
    index_of = {record_id: index for index, record_id in enumerate(ids)}
    limit_index = index_of.get(up_to) if up_to is not None else None
    added = [
        {"id": record_id, "index": index}
        for record_id, index in sorted(
            ((i, index_of[i]) for i in touched if i in index_of), key=lambda pair: pair[1]
        )
        if limit_index is None or index <= limit_index
    ]
    if max_changes is not None and len(removed) + len(added) > max_changes:
        raise MethodError("tooManyChanges")
    response: JSONObject = {
        "accountId": account_id,
        "oldQueryState": since,
        "newQueryState": delta.new_state,
        "removed": removed,
        "added": added,
    }
    if total:
        response["total"] = len(ids)
    return response
