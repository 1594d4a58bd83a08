"""Email/import (RFC 8621 §4.8) and Email/parse (§4.9): uploaded messages
stored in the Maildir, or read without storing them.

Email ids derive from content (DESIGN: Identity), so this server forbids two
Emails with the same bytes: importing a message already present is refused with
``alreadyExists`` and its ``existingId`` (§4.8), never a second copy.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

from maildir_jmap.core.capabilities import MAIL
from maildir_jmap.core.dispatch import Context, Method
from maildir_jmap.core.errors import MethodError, PropertyErrors, SetError, invalid_properties
from maildir_jmap.core.types import (
    ArgumentError,
    JSONObject,
    arg_id,
    arg_id_list,
    arg_object_map,
    arg_str,
    arg_str_list,
    check_known,
    is_id,
)
from maildir_jmap.mail.blobs import blob_bytes
from maildir_jmap.mail.email import GET_EXTRA, body_options
from maildir_jmap.mail.email_set import add_email, keyword_set, mailbox_ids, received_at
from maildir_jmap.mail.email_view import CONVENIENCE, content_json, is_email_property
from maildir_jmap.mail.records import account_of
from maildir_jmap.mime.headers import unfold
from maildir_jmap.mime.parse import Part, parse, split_head
from maildir_jmap.mime.summary import summarize
from maildir_jmap.store.account import Account
from maildir_jmap.store.index import EMAIL

IMPORT_PROPERTIES = ("blobId", "mailboxIds", "keywords", "receivedAt")


def _account(ctx: Context, args: JSONObject) -> tuple[str, Account]:
    account_id = arg_id(args, "accountId")
    assert account_id is not None
    return account_id, account_of(ctx.account(account_id, MAIL))


def last_received(raw: bytes) -> float | None:
    """§4.8's default receivedAt: the date of the most recent (topmost) Received
    field, the part after its last ';' (RFC 5321 §4.4)."""
    for name, value in split_head(raw)[0]:
        if name.lower() == "received":
            _, sep, date = unfold(value).rpartition(";")
            if not sep:
                return None
            try:
                return parsedate_to_datetime(date.strip()).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                return None
    return None


def _looks_like_message(raw: bytes) -> bool:
    """An RFC 5322 message starts with header fields; an upload that does not
    (an image, an empty file) is refused as ``invalidEmail``."""
    return bool(raw) and bool(split_head(raw)[0])


def email_import(ctx: Context, args: JSONObject) -> JSONObject:
    check_known(args, ("accountId", "ifInState", "emails"))
    account_id, account = _account(ctx, args)
    if_in_state = arg_str(args, "ifInState", nullable=True)
    emails = arg_object_map(args, "emails", required=True)  # §4.8: Id[EmailImport]
    if len(emails) > ctx.limits.maxObjectsInSet:
        raise MethodError("requestTooLarge", f"at most {ctx.limits.maxObjectsInSet} emails")
    old_state = account.state(EMAIL)
    if if_in_state is not None and if_in_state != old_state:
        raise MethodError("stateMismatch", f"current state is {old_state!r}")
    created: JSONObject = {}
    not_created: JSONObject = {}
    for creation_id, spec in emails.items():
        try:
            rec_json = _import_one(ctx, account, spec)
        except SetError as exc:
            not_created[creation_id] = exc.to_json()
            continue
        created[creation_id] = rec_json
        ctx.created_ids[creation_id] = rec_json["id"]
    return {
        "accountId": account_id,
        "oldState": old_state,
        "newState": account.state(EMAIL),
        "created": created or None,
        "notCreated": not_created or None,
    }


def _import_one(ctx: Context, account: Account, spec: JSONObject) -> JSONObject:
    unknown = [k for k in spec if k not in IMPORT_PROPERTIES]
    if unknown:
        raise invalid_properties(*unknown, description="not an EmailImport property")
    blob_id = spec.get("blobId")
    errors = PropertyErrors()
    # §4.8: a missing, mistyped or unknown blobId is invalidProperties.
    raw = blob_bytes(account, blob_id) if is_id(blob_id) else None
    if raw is None:
        errors.add("blobId", description="no such blob")
    boxes: set[str] = errors.check(lambda: mailbox_ids(account, ctx, spec.get("mailboxIds")), set())
    keywords: frozenset[str] = errors.check(
        lambda: keyword_set(spec.get("keywords", {})), frozenset()
    )
    when = errors.check(lambda: received_at(spec.get("receivedAt")), None)
    errors.raise_any()
    assert raw is not None
    if not _looks_like_message(raw):
        raise SetError("invalidEmail", "the blob is not an RFC 5322 message")
    if when is None:
        when = last_received(raw) or time.time()
    return add_email(account, raw, boxes, keywords, when)


# -- Email/parse ----------------------------------------------------------------------

PARSE_DEFAULT = (
    *CONVENIENCE,
    "hasAttachment",
    "preview",
    "bodyValues",
    "textBody",
    "htmlBody",
    "attachments",
)
NULL_METADATA = ("id", "mailboxIds", "keywords", "receivedAt")


def email_parse(ctx: Context, args: JSONObject) -> JSONObject:
    check_known(args, ("accountId", "blobIds", "properties", *GET_EXTRA))
    account_id, account = _account(ctx, args)
    blob_ids = arg_id_list(args, "blobIds") or []
    if len(blob_ids) > ctx.limits.maxObjectsInGet:
        raise MethodError("requestTooLarge", f"at most {ctx.limits.maxObjectsInGet} blobs")
    properties = arg_str_list(args, "properties")
    if properties is None:
        properties = list(PARSE_DEFAULT)
    bad = [p for p in properties if not is_email_property(p)]
    if bad:
        # §4.9: a forbidden form (header:From:asDate) is invalidArguments.
        raise ArgumentError(f"unknown properties: {', '.join(bad)}")
    body = body_options(args)
    parsed: JSONObject = {}
    not_parsable: list[str] = []
    not_found: list[str] = []
    for blob_id in dict.fromkeys(blob_ids):
        raw = blob_bytes(account, blob_id)
        if raw is None:
            not_found.append(blob_id)
        elif not _looks_like_message(raw):
            not_parsable.append(blob_id)
        else:
            parsed[blob_id] = _parsed_json(account, blob_id, raw, frozenset(properties), body)
    return {
        "accountId": account_id,
        "parsed": parsed or None,
        "notParsable": not_parsable or None,
        "notFound": not_found or None,
    }


def _parsed_json(
    account: Account, blob_id: str, raw: bytes, properties: frozenset[str], body: Any
) -> JSONObject:
    root: Part = parse(raw)
    summary = summarize(raw)
    out: JSONObject = {}
    for prop in properties:
        if prop in NULL_METADATA:
            out[prop] = None  # §4.9: these are null for a parsed blob
        elif prop == "blobId":
            out[prop] = blob_id
        elif prop == "size":
            out[prop] = summary.size
        elif prop == "threadId":
            # §4.9 MAY: the Thread it would join if imported, when we can tell.
            refs = [*summary.in_reply_to, *reversed(summary.references)]
            out[prop] = account.index.thread_for(summary.message_id, refs)
        elif prop == "hasAttachment":
            out[prop] = summary.has_attachment
        elif prop == "preview":
            out[prop] = summary.preview
    rest = properties - set(out)
    content_json(out, root.headers, root, frozenset(rest), body, blob_id)
    return out


def methods() -> list[Method]:
    return [
        Method("Email/import", MAIL, email_import, writes=True),
        Method("Email/parse", MAIL, email_parse),
    ]
