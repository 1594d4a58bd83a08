"""Generic /get /changes /query /queryChanges (RFC 8620 §5), and the one way a
datatype declares its standard methods (``methods``); /set and /copy are in
core/standard_set.py.

A datatype describes itself with a ``TypeSpec`` and, for each kind of method it
offers, a ``Kind``: the per-account object implementing that kind's protocol
(core/records.py). The functions here validate arguments, enforce limits and the
rules every type shares (ifInState, creation ids, requestTooLarge, response
shapes with every key present), and call the type only for what is special to
it. Each returns the response arguments; errors are raised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from maildir_jmap.core import standard_set
from maildir_jmap.core.dispatch import AccountAccess, Context, Method
from maildir_jmap.core.errors import MethodError
from maildir_jmap.core.query import Comparator, parse_sort, validate_filter, window
from maildir_jmap.core.records import (
    Changing,
    Copyable,
    Handler,
    Kind,
    Queryable,
    Readable,
    TypeSpec,
    Writable,
    options_of,
    records_of,
)
from maildir_jmap.core.types import (
    ArgumentError,
    JSONObject,
    arg_bool,
    arg_id,
    arg_id_list,
    arg_int,
    arg_str,
    arg_str_list,
    arg_unsigned,
    check_known,
)

T = TypeVar("T")


# -- /get (§5.1) ---------------------------------------------------------------


def get(ctx: Context, args: JSONObject, spec: TypeSpec, kind: Kind[Readable]) -> JSONObject:
    check_known(args, ("accountId", "ids", "properties", *kind.extra))
    account_id, records = records_of(ctx, args, spec, kind)
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
    found, not_found = records.get(unique, wanted, options_of(args, kind.extra))
    if unique is None and len(found) > ctx.limits.maxObjectsInGet:
        raise MethodError("requestTooLarge", f"more than {ctx.limits.maxObjectsInGet} records")
    return {"accountId": account_id, "state": state, "list": found, "notFound": not_found}


# -- /changes (§5.2) -----------------------------------------------------------


def changes(ctx: Context, args: JSONObject, spec: TypeSpec, kind: Kind[Changing]) -> JSONObject:
    check_known(args, ("accountId", "sinceState", "maxChanges", *kind.extra))
    account_id, records = records_of(ctx, args, spec, kind)
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


# -- /query (§5.5) and /queryChanges (§5.6) --------------------------------------


def _filter_and_sort(args: JSONObject, spec: TypeSpec) -> tuple[Any, list[Comparator]]:
    filter_ = args.get("filter")
    validate_filter(filter_, spec.check_condition)
    return filter_, parse_sort(args.get("sort"), spec.sortable, spec.comparator_args)


def query(ctx: Context, args: JSONObject, spec: TypeSpec, kind: Kind[Queryable]) -> JSONObject:
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
            *kind.extra,
        ),
    )
    account_id, records = records_of(ctx, args, spec, kind)
    filter_, sort = _filter_and_sort(args, spec)
    position = arg_int(args, "position", 0)
    anchor = arg_id(args, "anchor", nullable=True)
    anchor_offset = arg_int(args, "anchorOffset", 0)
    limit = arg_unsigned(args, "limit")
    total = arg_bool(args, "calculateTotal", False)
    state = records.state()
    ids = records.query(filter_, sort, options_of(args, kind.extra))
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
    ctx: Context, args: JSONObject, spec: TypeSpec, kind: Kind[Queryable]
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
            *kind.extra,
        ),
    )
    account_id, records = records_of(ctx, args, spec, kind)
    filter_, sort = _filter_and_sort(args, spec)
    since = arg_str(args, "sinceQueryState")
    max_changes = arg_unsigned(args, "maxChanges", positive=True)
    up_to = arg_id(args, "upToId", nullable=True)
    total = arg_bool(args, "calculateTotal", False)
    assert since is not None
    delta = records.changes(since, None)
    options = options_of(args, kind.extra)
    ids = records.query(filter_, sort, options)
    touched = set(delta.updated) | set(delta.created)
    removed = [*delta.updated, *delta.destroyed]
    # Records whose place moved without a change of their own count as changed.
    for record_id in records.related_changes(since, options):
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


# -- the declaration -----------------------------------------------------------

# The keyword names of ``methods`` are the kinds; these name the methods.
_GET, _CHANGES, _QUERY, _QUERY_CHANGES = get, changes, query, query_changes


def _bind(
    function: Callable[[Context, JSONObject, TypeSpec, Kind[T]], JSONObject],
    spec: TypeSpec,
    kind: Kind[T],
) -> Handler:
    def standard(ctx: Context, args: JSONObject) -> JSONObject:
        return function(ctx, args, spec, kind)

    around = kind.around
    if around is None:
        return standard
    return lambda ctx, args: around(ctx, args, standard)


def _kind(value: Kind[T] | Callable[[Context, AccountAccess], T]) -> Kind[T]:
    return value if isinstance(value, Kind) else Kind(value)


def methods(
    spec: TypeSpec,
    *,
    get: Kind[Readable] | Callable[[Context, AccountAccess], Readable] | None = None,
    changes: Kind[Changing] | Callable[[Context, AccountAccess], Changing] | None = None,
    set: Kind[Writable] | Callable[[Context, AccountAccess], Writable] | None = None,
    copy: Kind[Copyable] | Callable[[Context, AccountAccess], Copyable] | None = None,
    query: Kind[Queryable] | Callable[[Context, AccountAccess], Queryable] | None = None,
) -> list[Method]:
    """The standard methods a type offers, ready to register: ``Foo/get`` when
    ``get`` is given, and so on; ``query`` gives ``Foo/query`` and
    ``Foo/queryChanges``. Each is a ``Kind`` or just its per-account factory."""
    name, capability = spec.name, spec.capability
    out: list[Method] = []
    if get is not None:
        out.append(Method(f"{name}/get", capability, _bind(_GET, spec, _kind(get))))
    if changes is not None:
        handler = _bind(_CHANGES, spec, _kind(changes))
        out.append(Method(f"{name}/changes", capability, handler))
    if query is not None:
        kind = _kind(query)
        out.append(Method(f"{name}/query", capability, _bind(_QUERY, spec, kind)))
        out.append(Method(f"{name}/queryChanges", capability, _bind(_QUERY_CHANGES, spec, kind)))
    if set is not None:
        handler = _bind(standard_set.set_, spec, _kind(set))
        out.append(Method(f"{name}/set", capability, handler, writes=True))
    if copy is not None:
        handler = _bind(standard_set.copy, spec, _kind(copy))
        out.append(Method(f"{name}/copy", capability, handler, writes=True))
    return out
