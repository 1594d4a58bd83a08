"""PushSubscription/get and /set (RFC 8620 §7.2.1, §7.2.2).

Neither takes an accountId: subscriptions belong to the credential of the
request (``ctx.credential``), and only that credential's are visible. The HTTP
layer puts a ``PushAccess`` in ``ctx.push``; sending the PushVerification and
the StateChanges is sync/webpush.py's job (it listens to the store).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from maildir_jmap.core.capabilities import CORE
from maildir_jmap.core.dispatch import Context, Method
from maildir_jmap.core.errors import MethodError, SetError, invalid_properties
from maildir_jmap.core.standard_set import apply_set, set_arguments
from maildir_jmap.core.types import (
    ArgumentError,
    JSONObject,
    arg_id_list,
    arg_str_list,
    check_known,
    format_utc_date,
    is_id,
    parse_utc_date,
)
from maildir_jmap.sync.ece import check_client_keys
from maildir_jmap.sync.subscriptions import (
    MAX_PER_CREDENTIAL,
    Subscription,
    SubscriptionStore,
    url_problem,
)

PROPERTIES = ("id", "deviceClientId", "url", "keys", "verificationCode", "expires", "types")
PRIVATE = ("url", "keys")
"""§7.2.1: never returned; asking for them is ``forbidden``."""
MAX_TYPES = 64
MAX_DEVICE_ID = 255


@dataclass(frozen=True)
class PushAccess:
    store: SubscriptionStore
    user: str
    credential: str
    allow_private: bool = False
    allow_http: bool = False
    max_lifetime: float = 7 * 24 * 3600.0
    """§7.2: the server limits expiry; at least 48 hours, SHOULD be 7 days."""
    clock: Callable[[], float] = time.time


def _access(ctx: Context) -> PushAccess:
    access = ctx.push
    if not isinstance(access, PushAccess) or not ctx.credential:
        raise MethodError("forbidden", "push subscriptions need an authenticated HTTP session")
    return access


def _to_json(sub: Subscription, wanted: frozenset[str]) -> JSONObject:
    full: JSONObject = {
        "id": sub.id,
        "deviceClientId": sub.device_client_id,
        "verificationCode": sub.client_code,
        "expires": _date(sub.expires),
        "types": sub.types,
    }
    return {k: v for k, v in full.items() if k in wanted}


def _date(epoch: float) -> str:
    return format_utc_date(datetime.fromtimestamp(int(epoch), UTC))


def push_subscription_get(ctx: Context, args: JSONObject) -> JSONObject:
    check_known(args, ("ids", "properties"))
    access = _access(ctx)
    ids = arg_id_list(args, "ids")
    properties = arg_str_list(args, "properties")
    if properties is None:
        wanted = frozenset(PROPERTIES) - frozenset(PRIVATE)
    else:
        if any(p in PRIVATE for p in properties):
            raise MethodError("forbidden", "url and keys are never returned (RFC 8620 §7.2.1)")
        unknown = [p for p in properties if p not in PROPERTIES]
        if unknown:
            raise ArgumentError(f"unknown properties: {', '.join(unknown)}")
        wanted = frozenset(properties) | {"id"}
    if ids is not None and len(ids) > ctx.limits.maxObjectsInGet:
        raise MethodError("requestTooLarge", f"at most {ctx.limits.maxObjectsInGet} ids")
    mine = {s.id: s for s in access.store.of_credential(access.credential)}
    if ids is None:
        return {"list": [_to_json(s, wanted) for s in mine.values()], "notFound": []}
    unique = list(dict.fromkeys(ids))
    return {
        "list": [_to_json(mine[i], wanted) for i in unique if i in mine],
        "notFound": [i for i in unique if i not in mine],
    }


def _expiry(access: PushAccess, value: object) -> int:
    """The expiry to store: the client's, clamped to the server's maximum; the
    maximum when the client gave none."""
    now = access.clock()
    limit = int(now + access.max_lifetime)
    if value is None:
        return limit
    try:
        wanted = parse_utc_date(value).timestamp()
    except ArgumentError:
        raise invalid_properties("expires", description="expires must be a UTCDate") from None
    if wanted <= now:
        raise invalid_properties("expires", description="expires is in the past")
    return min(int(wanted), limit)


def _types(value: object) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_TYPES or not all(is_id(t) for t in value):
        raise invalid_properties("types", description="types must be null or type names")
    return list(dict.fromkeys(value))


def _create(access: PushAccess, obj: JSONObject) -> JSONObject:
    unknown = [k for k in obj if k not in PROPERTIES or k == "id"]
    if unknown:
        raise invalid_properties(*unknown, description="unknown or server-set properties")
    device = obj.get("deviceClientId")
    if not isinstance(device, str) or not 0 < len(device) <= MAX_DEVICE_ID:
        raise invalid_properties("deviceClientId", description="deviceClientId is required")
    url = obj.get("url")
    if not isinstance(url, str):
        raise invalid_properties("url", description="url is required")
    problem = url_problem(url, allow_private=access.allow_private, allow_http=access.allow_http)
    if problem:
        raise invalid_properties("url", description=problem)
    keys = obj.get("keys")
    if keys is not None:
        problem = check_client_keys(keys)
        if problem:
            raise invalid_properties("keys", description=problem)
    if obj.get("verificationCode") is not None:
        raise invalid_properties(
            "verificationCode", description="verificationCode must be null on create"
        )
    expires = _expiry(access, obj.get("expires"))
    types = _types(obj.get("types"))
    if len(access.store.of_credential(access.credential)) >= MAX_PER_CREDENTIAL:
        raise SetError("overQuota", f"at most {MAX_PER_CREDENTIAL} push subscriptions")
    sub = access.store.create(
        user=access.user,
        credential=access.credential,
        device_client_id=device,
        url=url,
        keys=dict(keys) if keys is not None else None,
        expires=expires,
        types=types,
    )
    created: JSONObject = {"id": sub.id, "expires": _date(expires)}
    for name, default in (("keys", None), ("types", None), ("verificationCode", None)):
        if name not in obj:
            created[name] = default
    return created


def _update(access: PushAccess, sub: Subscription, patch: JSONObject) -> JSONObject | None:
    immutable: dict[str, object] = {"id": sub.id, "deviceClientId": sub.device_client_id}
    immutable |= {"url": sub.url, "keys": sub.keys}
    changes: dict[str, Any] = {}
    answer: JSONObject = {}
    for key, value in patch.items():
        if key in immutable:
            if value != immutable[key]:
                raise invalid_properties(key, description=f"{key} is immutable")
        elif key == "verificationCode":
            if not isinstance(value, str) or value != sub.server_code:
                # §7.2.2: a wrong code MUST be rejected with invalidProperties.
                raise invalid_properties(key, description="wrong verification code")
            changes["client_code"] = value
        elif key == "expires":
            changes["expires"] = _expiry(access, value)
            if value is None or _date(changes["expires"]) != value:
                answer["expires"] = _date(changes["expires"])
        elif key == "types":
            changes["types"] = _types(value)
        else:
            raise invalid_properties(key, description="not a settable property")
    if changes:
        access.store.update(sub.id, **changes)
    return answer or None


class PushRecords:
    """The caller's own PushSubscriptions as /set operations (core/records.py
    Operations): another credential's subscriptions are notFound."""

    def __init__(self, access: PushAccess) -> None:
        self.access = access

    def _own(self, sub_id: str) -> Subscription:
        sub = self.access.store.get(sub_id)
        if sub is None or sub.credential != self.access.credential:
            raise SetError("notFound")
        return sub

    def create(self, ctx: Context, creation_id: str, obj: JSONObject) -> JSONObject:
        return _create(self.access, obj)

    def update(self, ctx: Context, record_id: str, patch: JSONObject) -> JSONObject | None:
        return _update(self.access, self._own(record_id), patch)

    def destroy(self, ctx: Context, record_id: str, options: JSONObject) -> None:
        self.access.store.destroy(self._own(record_id).id)

    def commit(self) -> None:
        """Each operation was stored as it happened."""


def push_subscription_set(ctx: Context, args: JSONObject) -> JSONObject:
    """§7.2.2: the standard /set without accountId, ifInState, oldState or newState."""
    check_known(args, ("create", "update", "destroy"))
    access = _access(ctx)
    create, update, destroy = set_arguments(ctx, args)
    return apply_set(ctx, PushRecords(access), create, update, destroy, {})


def methods() -> list[Method]:
    return [
        Method("PushSubscription/get", CORE, push_subscription_get, account_arg=None),
        Method("PushSubscription/set", CORE, push_subscription_set, account_arg=None),
    ]
