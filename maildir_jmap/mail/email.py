"""Email/get and Email/changes (RFC 8621 §4.2, §4.3); Thread/get and Thread/changes (§3)."""

from __future__ import annotations

from collections.abc import Sequence

from maildir_jmap.core import standard
from maildir_jmap.core.capabilities import MAIL
from maildir_jmap.core.dispatch import AccountAccess, Context, Method
from maildir_jmap.core.records import Changes, Handler, Kind, TypeSpec
from maildir_jmap.core.types import (
    ArgumentError,
    JSONObject,
    Serialized,
    arg_bool,
    arg_str_list,
    arg_unsigned,
)
from maildir_jmap.mail.email_filter import SORTABLE, check_condition
from maildir_jmap.mail.email_fragment import Splicer
from maildir_jmap.mail.email_view import (
    DEFAULT_PROPERTIES,
    BodyOptions,
    email_json,
    is_body_property,
    is_email_property,
    prefetch,
)
from maildir_jmap.mail.records import account_of, index_changes
from maildir_jmap.mime.views import DEFAULT_PART
from maildir_jmap.store.account import Account
from maildir_jmap.store.index import EMAIL, THREAD
from maildir_jmap.store.keywords import is_keyword

MAX_QUERY_LIMIT = 10_000

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
        chosen = DEFAULT_PART
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
    def __init__(self, account: Account, serialized: bool = False) -> None:
        self.account = account
        self.index = account.index
        self.serialized = serialized
        """Whether Emails may be answered as JSON text (``Context.serialized``)."""

    def state(self) -> str:
        return self.index.state(EMAIL)

    def get(
        self, ids: Sequence[str] | None, properties: frozenset[str], options: JSONObject
    ) -> tuple[list[JSONObject | Serialized], list[str]]:
        body = body_options(options)
        wanted = list(self.index.emails) if ids is None else ids
        found: list[JSONObject | Serialized] = []
        missing: list[str] = []
        emails = self.index.emails
        looked_up = [emails.get(i) for i in wanted]  # once: an initial sync asks for 45k
        records = [r for r in looked_up if r is not None]
        got = prefetch(self.account, records, properties, body)
        splicer = None
        if self.serialized and Splicer.serves(properties, body):
            splicer = Splicer(properties, body)
            splice, needs_envelope, needs_body = (
                splicer.email,
                splicer.needs_envelope,
                splicer.needs_body,
            )
        envelopes, bodies = got.envelopes, got.bodies
        for email_id, rec in zip(wanted, looked_up, strict=True):
            if rec is None:
                missing.append(email_id)
                continue
            if splicer is not None:  # an initial sync comes here tens of thousands of times
                envelope, kept = envelopes.get(email_id), bodies.get(email_id)
                if (envelope is not None or not needs_envelope) and (
                    kept is not None or not needs_body
                ):
                    found.append(splice(rec, envelope, kept))
                    continue
            built = email_json(self.account, rec, properties, body, got)
            if built is None:
                missing.append(email_id)
            else:
                found.append(built)
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


def email_records(ctx: Context, access: AccountAccess) -> EmailRecords:
    return EmailRecords(account_of(access), ctx.serialized)


def thread_records(ctx: Context, access: AccountAccess) -> ThreadRecords:
    return ThreadRecords(account_of(access))


EMAIL_SPEC = TypeSpec(
    name="Email",
    capability=MAIL,
    is_property=is_email_property,
    default_properties=DEFAULT_PROPERTIES,
    check_condition=check_condition,
    sortable=SORTABLE,
    comparator_args={"keyword": is_keyword},
    max_query_limit=MAX_QUERY_LIMIT,
)
THREAD_SPEC = TypeSpec(
    name="Thread",
    capability=MAIL,
    is_property=lambda p: p in ("id", "emailIds"),
    default_properties=("id", "emailIds"),
)


def _body_options(ctx: Context, args: JSONObject, get: Handler) -> JSONObject:
    body_options(args)  # type errors are invalidArguments before anything is read
    return get(ctx, args)


def methods() -> list[Method]:
    """Email/get and /changes (query: email_query.py; set, copy: email_set.py),
    Thread/get and /changes."""
    return [
        *standard.methods(
            EMAIL_SPEC,
            get=Kind(email_records, extra=GET_EXTRA, around=_body_options),
            changes=email_records,
        ),
        *standard.methods(THREAD_SPEC, get=thread_records, changes=thread_records),
    ]
