"""Email/get and Email/changes (RFC 8621 §4.2, §4.3); Thread/get and Thread/changes (§3)."""

from __future__ import annotations

from collections.abc import Sequence

from maildir_jmap.core import standard
from maildir_jmap.core.capabilities import MAIL
from maildir_jmap.core.dispatch import Context, Method
from maildir_jmap.core.standard import Changes, TypeSpec
from maildir_jmap.core.types import ArgumentError, JSONObject, arg_bool, arg_str_list, arg_unsigned
from maildir_jmap.mail.common import index_changes
from maildir_jmap.mail.email_view import (
    DEFAULT_BODY_PROPERTIES,
    DEFAULT_PROPERTIES,
    BodyOptions,
    email_json,
    envelopes,
    is_body_property,
    is_email_property,
    is_envelope_only,
)
from maildir_jmap.store.account import Account
from maildir_jmap.store.index import EMAIL, THREAD

GET_EXTRA = (
    "bodyProperties",
    "fetchTextBodyValues",
    "fetchHTMLBodyValues",
    "fetchAllBodyValues",
    "maxBodyValueBytes",
)


def body_options(args: JSONObject) -> BodyOptions:
    """The Email/get arguments of RFC 8621 §4.2, type-checked."""
    properties = arg_str_list(args, "bodyProperties")
    if properties is None:
        chosen = frozenset(DEFAULT_BODY_PROPERTIES)
    else:
        bad = [p for p in properties if not is_body_property(p)]
        if bad:
            raise ArgumentError(f"unknown body properties: {', '.join(bad)}")
        chosen = frozenset(properties)
    return BodyOptions(
        chosen,
        text=arg_bool(args, "fetchTextBodyValues", False),
        html=arg_bool(args, "fetchHTMLBodyValues", False),
        every=arg_bool(args, "fetchAllBodyValues", False),
        max_bytes=arg_unsigned(args, "maxBodyValueBytes") or 0,
    )


class EmailRecords:
    def __init__(self, account: Account) -> None:
        self.account = account
        self.index = account.index

    def state(self) -> str:
        return self.index.state(EMAIL)

    def get(
        self, ids: Sequence[str] | None, properties: frozenset[str], options: JSONObject
    ) -> tuple[list[JSONObject], list[str]]:
        body = body_options(options)
        wanted = list(self.index.emails) if ids is None else ids
        found: list[JSONObject] = []
        missing: list[str] = []
        cached: dict[str, JSONObject] = {}
        if is_envelope_only(properties):
            records = [r for r in (self.index.emails.get(i) for i in wanted) if r is not None]
            cached = envelopes(self.account, records)
        for email_id in wanted:
            rec = self.index.emails.get(email_id)
            if rec is None or (cached and email_id not in cached):
                missing.append(email_id)
                continue
            view = email_json(self.account, rec, properties, body, cached.get(email_id))
            if view is None:
                missing.append(email_id)
            else:
                found.append(view)
        return found, missing

    def changes(self, since_state: str, max_changes: int | None) -> Changes:
        return index_changes(self.index, EMAIL, since_state, max_changes)


class ThreadRecords:
    def __init__(self, account: Account) -> None:
        self.index = account.index

    def state(self) -> str:
        return self.index.state(THREAD)

    def get(
        self, ids: Sequence[str] | None, properties: frozenset[str], options: JSONObject
    ) -> tuple[list[JSONObject], list[str]]:
        threads = self.index.threads
        wanted = list(threads) if ids is None else ids
        found = []
        for thread_id in wanted:
            thread = threads.get(thread_id)
            if thread is not None and thread.email_ids:
                view = {"id": thread.id, "emailIds": list(thread.email_ids)}
                found.append({k: v for k, v in view.items() if k in properties})
        present = {t["id"] for t in found}
        return found, [t for t in wanted if t not in present]

    def changes(self, since_state: str, max_changes: int | None) -> Changes:
        return index_changes(self.index, THREAD, since_state, max_changes)


EMAIL_SPEC = TypeSpec(
    name="Email",
    capability=MAIL,
    records=lambda ctx, access: EmailRecords(access.backend),  # type: ignore[arg-type,return-value]
    is_property=is_email_property,
    default_properties=DEFAULT_PROPERTIES,
)
THREAD_SPEC = TypeSpec(
    name="Thread",
    capability=MAIL,
    records=lambda ctx, access: ThreadRecords(access.backend),  # type: ignore[arg-type,return-value]
    is_property=lambda p: p in ("id", "emailIds"),
    default_properties=("id", "emailIds"),
)


def email_get(ctx: Context, args: JSONObject) -> JSONObject:
    body_options(args)  # type errors are invalidArguments before anything is read
    return standard.get(ctx, args, EMAIL_SPEC, extra=GET_EXTRA)


def methods() -> list[Method]:
    return [
        Method("Email/get", MAIL, email_get),
        Method("Email/changes", MAIL, lambda c, a: standard.changes(c, a, EMAIL_SPEC)),
        Method("Thread/get", MAIL, lambda c, a: standard.get(c, a, THREAD_SPEC)),
        Method("Thread/changes", MAIL, lambda c, a: standard.changes(c, a, THREAD_SPEC)),
    ]
