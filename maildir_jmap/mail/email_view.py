"""Email objects as JSON (RFC 8621 §4.1) from an index record and, when a property
needs it, the message file.

Properties the index holds (ids, mailboxes, keywords, size, dates,
hasAttachment) never touch the disk. The convenience header properties, the
preview and, with the default bodyProperties, the body (structure, parts, values)
come from the views made at index time (mime/views.py, store/views.py); anything else, or a
view not kept, reads and parses the message once per Email/get entry (and keeps
its views for the next time).
"""

from __future__ import annotations

from typing import Any

import orjson

from maildir_jmap.core.types import JSONObject, format_epoch
from maildir_jmap.mime.headers import HeaderProperty, header_value, parse_property
from maildir_jmap.mime.parse import Part, body_value, decompose, parse, split_head, truncate
from maildir_jmap.mime.summary import blob_base, preview_of
from maildir_jmap.mime.views import (
    AT,
    BODY_LISTS,
    DEFAULT_PART,
    ENVELOPE,
    KEPT,
    BodyText,
    EnvelopeText,
    body_view,
    envelope_as_text,
    envelope_of,
    envelope_values,
    has_value,
    leaves,
    part_json,
)
from maildir_jmap.store.account import Account
from maildir_jmap.store.records import EmailRecord

INDEX_PROPERTIES = frozenset(
    {
        "id",
        "blobId",
        "threadId",
        "mailboxIds",
        "keywords",
        "size",
        "receivedAt",
        "hasAttachment",
    }
)
CONVENIENCE = ENVELOPE
KEPT_PROPERTIES = frozenset(KEPT)
"""What a kept envelope answers: the convenience properties and the preview."""
BODY = frozenset({"bodyStructure", "textBody", "htmlBody", "attachments", "bodyValues"})
PROPERTIES = INDEX_PROPERTIES | KEPT_PROPERTIES | BODY | {"headers"}
DEFAULT_PROPERTIES = (
    "id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt", "messageId",
    "inReplyTo", "references", "sender", "from", "to", "cc", "bcc", "replyTo", "subject",
    "sentAt", "hasAttachment", "preview", "bodyValues", "textBody", "htmlBody", "attachments",
)  # fmt: skip
BODY_PART_PROPERTIES = frozenset(
    {
        "partId",
        "blobId",
        "size",
        "headers",
        "name",
        "type",
        "charset",
        "disposition",
        "cid",
        "language",
        "location",
        "subParts",
    }
)


def is_email_property(name: str) -> bool:
    return name in PROPERTIES or parse_property(name) is not None


def is_body_property(name: str) -> bool:
    return name in BODY_PART_PROPERTIES or parse_property(name) is not None


class BodyOptions:
    def __init__(
        self,
        properties: frozenset[str],
        text: bool = False,
        html: bool = False,
        every: bool = False,
        max_bytes: int = 0,
    ) -> None:
        self.properties = properties
        self.text = text
        self.html = html
        self.every = every
        self.max_bytes = max_bytes


class Prefetched:
    """What one Email/get found kept, or made now, for its Emails: envelopes (as
    JSON text) and body views by Email id (a body view of None: not kept, too
    large), and the messages parsed on the way, so none is parsed twice."""

    def __init__(self) -> None:
        self.envelopes: dict[str, EnvelopeText] = {}
        self.bodies: dict[str, BodyText | None] = {}
        self.roots: dict[str, Part] = {}


def _answerable(rest: frozenset[str], body: BodyOptions) -> bool:
    """Whether kept views can answer every property in ``rest``."""
    if not rest <= KEPT_PROPERTIES | BODY:
        return False
    return not rest & BODY or body.properties == DEFAULT_PART


def prefetch(
    account: Account, records: list[EmailRecord], properties: frozenset[str], body: BodyOptions
) -> Prefetched:
    """The kept views of ``records`` in one read of the views store; the missing
    ones (an index older than views, an Email made over JMAP) are made from the
    message and kept."""
    got = Prefetched()
    rest = properties - INDEX_PROPERTIES
    if not rest or not _answerable(rest, body):
        return got
    with_body = bool(rest & BODY)
    views = account.views
    ids = [r.id for r in records]
    if with_body:
        got.envelopes, got.bodies = views.whole(ids)
    else:
        got.envelopes = views.envelopes(ids)
    if len(got.envelopes) == len(ids) and (not with_body or len(got.bodies) == len(ids)):
        return got  # every one kept, as after indexing
    envelopes: dict[str, EnvelopeText] = {}
    bodies: dict[str, BodyText | None] = {}
    for rec in records:
        if rec.id in got.envelopes and (not with_body or rec.id in got.bodies):
            continue
        # Made from the whole message, head and body: the preview is kept with the
        # envelope, and the body view is kept with it while the message is parsed.
        raw = account.read_message(rec)
        if raw is None:
            continue  # gone: email_json reports it as not found
        root = got.roots[rec.id] = parse(raw)
        parts = decompose(root)
        envelopes[rec.id] = envelope_as_text(envelope_of(root.headers), preview_of(parts))
        view = body_view(root, blob_base(rec.id), parts)
        bodies[rec.id] = None if view is None else BodyText.of(view)
    views.put(envelopes, bodies)
    got.envelopes.update(envelopes)
    got.bodies.update(bodies)
    return got


def email_json(
    account: Account,
    rec: EmailRecord,
    properties: frozenset[str],
    body: BodyOptions,
    got: Prefetched | None = None,
) -> JSONObject | None:
    """The Email with ``properties``; None if its file is gone (Dovecot expunged it
    since the last reconcile), so the caller reports it as not found. ``got``
    (from ``prefetch``) answers from kept views without a read."""
    out: JSONObject = {}
    for prop in properties & INDEX_PROPERTIES:
        if prop == "id":
            out[prop] = rec.id
        elif prop == "blobId":
            out[prop] = "G" + rec.digest
        elif prop == "threadId":
            out[prop] = rec.thread_id
        elif prop == "mailboxIds":
            out[prop] = dict.fromkeys(sorted(rec.mailbox_ids), True)
        elif prop == "keywords":
            out[prop] = dict.fromkeys(sorted(rec.keywords), True)
        elif prop == "size":
            out[prop] = rec.size
        elif prop == "receivedAt":
            out[prop] = format_epoch(rec.received)
        elif prop == "hasAttachment":
            out[prop] = rec.has_attachment
    rest = properties - INDEX_PROPERTIES
    if not rest:
        return out
    got = got or Prefetched()
    envelope = got.envelopes.get(rec.id)
    view = got.bodies.get(rec.id)
    if envelope is not None and (view is not None or not rest & BODY):
        values = envelope_values(envelope)
        for prop in rest & KEPT_PROPERTIES:
            out[prop] = orjson.loads(values[AT[prop]])
        if view is not None:
            _kept_body(out, view, rest, body)
        return out
    root = got.roots.get(rec.id)
    if root is None and (rest & BODY or "preview" in rest):
        raw = account.read_message(rec)
        if raw is None:
            return None
        root = parse(raw)
    if root is not None:
        headers = root.headers
    else:
        head = account.read_head(rec)
        if head is None:
            return None
        headers = split_head(head)[0]
    content_json(out, headers, root, rest, body, blob_base(rec.id))
    return out


def _kept_body(out: JSONObject, view: BodyText, wanted: frozenset[str], body: BodyOptions) -> None:
    """The body properties from a kept view (mime/views.py ``body_view``), as
    ``_body`` makes them from a parse."""
    for prop in BODY_LISTS:
        if prop in wanted:
            out[prop] = orjson.loads(view.lists[prop])
    if "bodyValues" not in wanted:
        return
    values: dict[str, Any] = {}
    for part_id in view.chosen(body.text, body.html, body.every):
        _, problem, is_html, _ = view.values[part_id]
        text, truncated = truncate(view.value(part_id), is_html, body.max_bytes)
        values[part_id] = {"value": text, "isEncodingProblem": problem, "isTruncated": truncated}
    out["bodyValues"] = values


def content_json(
    out: JSONObject,
    headers: list[tuple[str, str]],
    root: Part | None,
    rest: frozenset[str],
    body: BodyOptions,
    base: str,
) -> None:
    """The properties read from the message itself (headers, convenience
    properties, body structure and values) into ``out``."""
    out.update(envelope_of(headers, rest))
    for prop in rest - CONVENIENCE.keys() - BODY:
        if prop == "preview":
            if root is not None:
                out[prop] = preview_of(decompose(root))
        elif prop == "headers":
            out[prop] = [{"name": n, "value": v} for n, v in headers]
        else:
            parsed: HeaderProperty | None = parse_property(prop)
            if parsed is not None:
                out[prop] = header_value(headers, parsed)
    if root is not None:
        _body(out, base, root, rest, body)


def _body(
    out: JSONObject, base: str, root: Part, wanted: frozenset[str], body: BodyOptions
) -> None:
    text, html, attachments = decompose(root)
    props = body.properties
    if "bodyStructure" in wanted:
        out["bodyStructure"] = part_json(base, root, props, structure=True)
    if "textBody" in wanted:
        out["textBody"] = [part_json(base, p, props) for p in text]
    if "htmlBody" in wanted:
        out["htmlBody"] = [part_json(base, p, props) for p in html]
    if "attachments" in wanted:
        out["attachments"] = [part_json(base, p, props) for p in attachments]
    if "bodyValues" in wanted:
        chosen: list[Part] = []
        if body.every:
            chosen += leaves(root)
        if body.text:
            chosen += text
        if body.html:
            chosen += html
        values: dict[str, Any] = {}
        for part in chosen:
            if has_value(part) and part.part_id and part.part_id not in values:
                values[part.part_id] = body_value(part, body.max_bytes)
        out["bodyValues"] = values
