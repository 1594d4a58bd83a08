"""Quota/get, /changes, /query and /queryChanges (RFC 9425) over Dovecot's quota
(store/quota.py): one Quota per limited resource of the user's quota root, the
same resources IMAP GETQUOTAROOT reports (STORAGE as ``octets``, MESSAGE as
``count``), with the same usage.

Decided where RFC 9425 leaves room:

- ``types`` is ``["Email"]``: §5.1 asks for names from the JMAP Types registry
  (its example's "Mail" is not one). Quotas are shown only to requests using
  ``urn:ietf:params:jmap:mail`` (§5.1: none whose types the client cannot know).
- The state is the usage itself plus a digest of the limits, so /changes needs no
  log: the same usage again is the same state, and any state of this account
  that parses can be answered exactly (``updatedProperties: ["used"]`` when only
  usage moved, §5.2).
- ``id``s are ``octets`` and ``count``; ``name`` is Dovecot's root name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from maildir_jmap.core import standard
from maildir_jmap.core.capabilities import MAIL, QUOTA
from maildir_jmap.core.dispatch import AccountAccess, Context, Method
from maildir_jmap.core.errors import MethodError
from maildir_jmap.core.query import Comparator, collation_key, matches_filter
from maildir_jmap.core.records import Changes, Kind, TypeSpec
from maildir_jmap.core.types import ArgumentError, JSONObject
from maildir_jmap.mail.records import account_of
from maildir_jmap.store.account import Account

QUOTA_TYPE = "Quota"
PROPERTIES = (
    "id", "resourceType", "used", "hardLimit", "scope", "name", "types",
    "warnLimit", "softLimit", "description",
)  # fmt: skip
CONDITIONS = {"name": str, "scope": str, "resourceType": str, "type": str}
_STATE = re.compile(r"^q(\d+)\.(\d+)\.([0-9a-f]{8})$")


def _check_condition(condition: JSONObject) -> None:
    for key, value in condition.items():
        kind = CONDITIONS.get(key)
        if kind is None:
            raise MethodError("unsupportedFilter", f"Quota has no filter {key!r}")
        if not isinstance(value, kind):
            raise ArgumentError(f"filter {key!r} must be a String")


def state_of(account: Account) -> str:
    """The Quota state: usage and a digest of what else a Quota shows."""
    quota = account.quota
    if quota is None:
        return "q0.0.00000000"
    used = quota.usage(account.index)
    settings = quota.settings
    facts = f"{settings.name}\0{settings.bytes}\0{settings.messages}\0{settings.backend}"
    digest = hashlib.sha256(facts.encode("utf-8")).hexdigest()[:8]
    return f"q{used.bytes}.{used.messages}.{digest}"


class QuotaRecords:
    def __init__(self, ctx: Context, account: Account) -> None:
        self.account = account
        self.visible = MAIL in ctx.using

    def state(self) -> str:
        return state_of(self.account)

    def records(self) -> dict[str, dict[str, Any]]:
        quota = self.account.quota
        if quota is None or not self.visible:
            return {}
        used = quota.usage(self.account.index)
        settings = quota.settings
        out: dict[str, dict[str, Any]] = {}
        for record_id, limit, value in (
            ("octets", settings.bytes, used.bytes),
            ("count", settings.messages, used.messages),
        ):
            if not limit:
                continue  # unlimited: GETQUOTAROOT leaves it out too
            out[record_id] = {
                "id": record_id,
                "resourceType": record_id,
                "used": value,
                "hardLimit": limit,
                "scope": "account",
                "name": settings.name,
                "types": ["Email"],
                "warnLimit": None,
                "softLimit": None,
                "description": f"Dovecot's quota root {settings.name!r} "
                f"({settings.backend} backend), as IMAP GETQUOTAROOT reports it",
            }
        return out

    def get(
        self, ids: Sequence[str] | None, properties: frozenset[str], options: JSONObject
    ) -> tuple[list[JSONObject], list[str]]:
        records = self.records()
        wanted = list(records) if ids is None else list(ids)
        found = [
            {k: v for k, v in records[i].items() if k in properties} for i in wanted if i in records
        ]
        return found, [i for i in wanted if i not in records]

    def changes(self, since_state: str, max_changes: int | None) -> Changes:
        old = _STATE.match(since_state)
        now = self.state()
        current = _STATE.match(now)
        if old is None or current is None:
            raise MethodError("cannotCalculateChanges", "not a Quota state of this server")
        ids = list(self.records())
        if old.group(3) != current.group(3):
            updated = ids  # the limits or the root changed: everything is new to the client
        else:
            moved = {"octets": old.group(1) != current.group(1)}
            moved["count"] = old.group(2) != current.group(2)
            updated = [i for i in ids if moved[i]]
        return Changes(since_state, now, False, [], updated, [])

    def query(
        self, filter: JSONObject | None, sort: list[Comparator], options: JSONObject
    ) -> Sequence[str]:
        records = self.records()

        def matches(rec: dict[str, Any]) -> bool:
            def leaf(c: JSONObject) -> bool:
                return (
                    ("name" not in c or c["name"] in rec["name"])
                    and ("scope" not in c or c["scope"] == rec["scope"])
                    and ("resourceType" not in c or c["resourceType"] == rec["resourceType"])
                    and ("type" not in c or c["type"] in rec["types"])
                )

            return matches_filter(filter, leaf)

        chosen = [r for r in records.values() if matches(r)]
        for comparator in reversed(sort):
            if comparator.property == "name":
                key = collation_key(comparator.collation)
                chosen.sort(key=lambda r: key(r["name"]), reverse=not comparator.is_ascending)
            else:
                chosen.sort(key=lambda r: r["used"], reverse=not comparator.is_ascending)
        return [r["id"] for r in chosen]

    def related_changes(self, since_state: str, options: JSONObject) -> set[str]:
        return set()


def records_for(ctx: Context, access: AccountAccess) -> QuotaRecords:
    return QuotaRecords(ctx, account_of(access))


def only_used(ctx: Context, args: JSONObject, changes: Any) -> JSONObject:
    """RFC 9425 §5.2: ``updatedProperties`` is ["used"] when only usage moved."""
    response: JSONObject = changes(ctx, args)
    old, new = _STATE.match(response["oldState"]), _STATE.match(response["newState"])
    same_limits = old is not None and new is not None and old.group(3) == new.group(3)
    response["updatedProperties"] = ["used"] if same_limits and response["updated"] else None
    return response


SPEC = TypeSpec(
    name=QUOTA_TYPE,
    capability=QUOTA,
    is_property=lambda p: p in PROPERTIES,
    default_properties=PROPERTIES,
    check_condition=_check_condition,
    sortable=("name", "used"),
)


def methods() -> list[Method]:
    return standard.methods(
        SPEC,
        get=records_for,
        changes=Kind(records_for, around=only_used),
        query=records_for,
    )
