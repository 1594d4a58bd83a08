"""Generic /set (RFC 8620 §5.3) and /copy (§5.4).

``set_`` takes the arguments of a per-account type; ``apply_set`` is the loop
itself, for a type that has no account (PushSubscription, §7.2.2). Creates run
in an order where ``#creationId`` references resolve; every operation's failure
is that operation's SetError; the type commits once, whatever happened.
"""

from __future__ import annotations

from typing import Any

from maildir_jmap.core.dispatch import Context
from maildir_jmap.core.errors import MethodError, SetError
from maildir_jmap.core.records import (
    Copyable,
    Kind,
    Operations,
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
    arg_object_map,
    arg_str,
    check_known,
    is_id,
)

# -- /set (§5.3) ---------------------------------------------------------------


def _set_arguments(args: JSONObject, ctx: Context) -> tuple[JSONObject, JSONObject, list[str]]:
    create = arg_object_map(args, "create")
    update = arg_object_map(args, "update", refs=True)  # errata: #creationId keys allowed
    destroy = arg_id_list(args, "destroy", allow_refs=True) or []
    if len(create) + len(update) + len(destroy) > ctx.limits.maxObjectsInSet:
        raise MethodError("requestTooLarge", f"at most {ctx.limits.maxObjectsInSet} objects")
    return create, update, destroy


def _check_state(records: Writable | Copyable, wanted: str | None) -> str:
    state = records.state()
    if wanted is not None and wanted != state:
        raise MethodError("stateMismatch", f"current state is {state!r}")
    return state


def set_(ctx: Context, args: JSONObject, spec: TypeSpec, kind: Kind[Writable]) -> JSONObject:
    check_known(args, ("accountId", "ifInState", "create", "update", "destroy", *kind.extra))
    account_id, records = records_of(ctx, args, spec, kind)
    if_in_state = arg_str(args, "ifInState", nullable=True)
    create, update, destroy = _set_arguments(args, ctx)
    old_state = _check_state(records, if_in_state)
    result = apply_set(ctx, records, create, update, destroy, options_of(args, kind.extra))
    return {
        "accountId": account_id,
        "oldState": old_state,
        "newState": records.state(),
        **result,
    }


def set_arguments(ctx: Context, args: JSONObject) -> tuple[JSONObject, JSONObject, list[str]]:
    """``create``, ``update`` and ``destroy``, type-checked, within maxObjectsInSet."""
    return _set_arguments(args, ctx)


def apply_set(
    ctx: Context,
    records: Operations,
    create: JSONObject,
    update: JSONObject,
    destroy: list[str],
    options: JSONObject,
) -> JSONObject:
    """The operations of a /set, in §5.3's order (create, update, destroy), each
    failing on its own; the type commits once at the end, whatever happened."""
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


def copy(ctx: Context, args: JSONObject, spec: TypeSpec, kind: Kind[Copyable]) -> JSONObject:
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
            *kind.extra,
        ),
    )
    from_id = arg_id(args, "fromAccountId")
    assert from_id is not None
    account_id, records = records_of(ctx, args, spec, kind)
    if from_id == account_id:
        raise ArgumentError("fromAccountId and accountId must differ")
    from_access = ctx.accounts.get(from_id)
    if from_access is None:
        raise MethodError("fromAccountNotFound")
    if spec.capability not in from_access.capabilities:
        raise MethodError("fromAccountNotSupportedByMethod")
    source = kind.records(ctx, from_access)
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
