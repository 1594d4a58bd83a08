"""Email objects as JSON (RFC 8621 §4.1) from an index record and, when a property
needs it, the message file.

Properties the index holds (ids, mailboxes, keywords, size, dates, preview,
hasAttachment) never touch the disk; anything from the headers or the body
reads and parses the message once per Email/get entry.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from maildir_jmap.core.types import JSONObject, format_utc_date
from maildir_jmap.mime.headers import (
    HeaderProperty,
    as_addresses,
    as_date,
    as_message_ids,
    as_text,
    header_value,
    parse_property,
)
from maildir_jmap.mime.parse import Part, body_value, decompose, parse, split_head
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
        "preview",
    }
)
CONVENIENCE = {
    "messageId": ("Message-ID", as_message_ids),
    "inReplyTo": ("In-Reply-To", as_message_ids),
    "references": ("References", as_message_ids),
    "sender": ("Sender", as_addresses),
    "from": ("From", as_addresses),
    "to": ("To", as_addresses),
    "cc": ("Cc", as_addresses),
    "bcc": ("Bcc", as_addresses),
    "replyTo": ("Reply-To", as_addresses),
    "subject": ("Subject", as_text),
    "sentAt": ("Date", as_date),
}
BODY = frozenset({"bodyStructure", "textBody", "htmlBody", "attachments", "bodyValues"})
PROPERTIES = INDEX_PROPERTIES | set(CONVENIENCE) | BODY | {"headers"}
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
DEFAULT_BODY_PROPERTIES = (
    "partId", "blobId", "size", "name", "type", "charset", "disposition", "cid", "language",
    "location",
)  # fmt: skip


def is_email_property(name: str) -> bool:
    return name in PROPERTIES or parse_property(name) is not None


def is_body_property(name: str) -> bool:
    return name in BODY_PART_PROPERTIES or parse_property(name) is not None


def blob_base(email_id: str) -> str:
    """``P<email hash>``: a part's blobId is this, ``_`` and its partId, resolvable
    without a table (DESIGN: Identity; '_' rather than '.', which an Id may not
    contain, RFC 8620 §1.2). Parts of parsed blobs chain on: ``<blobId>_<partId>``."""
    return f"P{email_id[1:]}"


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


# EmailBodyPart properties that are plain attributes of a parsed Part.
_PART_ATTRIBUTES = {
    "partId": "part_id",
    "size": "size",
    "name": "name",
    "type": "type",
    "charset": "charset",
    "disposition": "disposition",
    "cid": "cid",
    "language": "language",
    "location": "location",
}


def part_json(
    base: str, part: Part, properties: frozenset[str], *, structure: bool = False
) -> JSONObject:
    """One EmailBodyPart with ``properties``. In a ``bodyStructure`` (``structure``)
    a multipart always carries its ``subParts``, whatever ``bodyProperties`` says:
    §4.1.4 calls bodyStructure "the full MIME structure of the message body", and
    clients (the JMAP demo webmail among them) ask for bodyProperties without
    subParts and still walk the tree."""
    out: JSONObject = {}
    if structure and part.sub_parts is not None and "subParts" not in properties:
        out["subParts"] = [part_json(base, p, properties, structure=True) for p in part.sub_parts]
    for prop in properties:
        if prop in _PART_ATTRIBUTES:
            out[prop] = getattr(part, _PART_ATTRIBUTES[prop])
        elif prop == "blobId":
            out[prop] = f"{base}_{part.part_id}" if part.part_id else None
        elif prop == "headers":
            out[prop] = [{"name": n, "value": v} for n, v in part.headers]
        elif prop == "subParts":
            out[prop] = (
                [part_json(base, p, properties, structure=structure) for p in part.sub_parts]
                if part.sub_parts is not None
                else None
            )
        else:
            parsed = parse_property(prop)
            if parsed is not None:
                out[prop] = header_value(part.headers, parsed)
    return out


def _leaves(part: Part) -> list[Part]:
    if part.sub_parts is None:
        return [part]
    return [leaf for child in part.sub_parts for leaf in _leaves(child)]


def is_envelope_only(properties: frozenset[str]) -> bool:
    """Whether every property asked for is in the index or the envelope cache."""
    rest = properties - INDEX_PROPERTIES
    return bool(rest) and rest <= CONVENIENCE.keys()


def envelopes(account: Account, records: list[EmailRecord]) -> dict[str, JSONObject]:
    """The convenience properties of each Email, from the cache; the ones not cached
    yet are read from their header sections and stored."""
    cache = account.envelopes
    found = cache.get_many([r.id for r in records])
    fresh: dict[str, JSONObject] = {}
    everything = frozenset(CONVENIENCE)
    no_body = BodyOptions(frozenset())
    for rec in records:
        if rec.id in found or rec.id in fresh:
            continue
        head = account.read_head(rec)
        if head is None:
            continue  # gone: the caller reports it as not found
        envelope: JSONObject = {}
        content_json(envelope, split_head(head)[0], None, everything, no_body, "")
        fresh[rec.id] = envelope
    cache.put_many(fresh)
    return found | fresh


def email_json(
    account: Account,
    rec: EmailRecord,
    properties: frozenset[str],
    body: BodyOptions,
    envelope: JSONObject | None = None,
) -> JSONObject | None:
    """The Email with ``properties``; None if its file is gone (Dovecot expunged it
    since the last reconcile), so the caller reports it as not found. ``envelope``
    (from ``envelopes``) answers the convenience properties without a read."""
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
            out[prop] = format_utc_date(datetime.fromtimestamp(rec.received, UTC))
        elif prop == "hasAttachment":
            out[prop] = rec.has_attachment
        elif prop == "preview":
            out[prop] = rec.preview
    rest = properties - INDEX_PROPERTIES
    if not rest:
        return out
    if envelope is not None and rest <= CONVENIENCE.keys():
        out.update({prop: envelope[prop] for prop in rest})
        return out
    root: Part | None = None
    if rest & BODY:
        raw = account.read_message(rec)
        if raw is None:
            return None
        root = parse(raw)
        headers = root.headers
    else:
        head = account.read_head(rec)
        if head is None:
            return None
        headers = split_head(head)[0]
    content_json(out, headers, root, rest, body, blob_base(rec.id))
    return out


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
    last: dict[str, str] = {}
    for name, value in headers:
        last[name.lower()] = value  # §4.1.3: the last instance of a field counts
    for prop in rest:
        if prop in CONVENIENCE:
            name, parser = CONVENIENCE[prop]
            raw = last.get(name.lower())
            out[prop] = parser(raw) if raw is not None else None
        elif prop == "headers":
            out[prop] = [{"name": n, "value": v} for n, v in headers]
        elif prop not in BODY:
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
            chosen += _leaves(root)
        if body.text:
            chosen += text
        if body.html:
            chosen += html
        values: dict[str, Any] = {}
        for part in chosen:
            if part.part_id and part.type.startswith("text/") and part.part_id not in values:
                values[part.part_id] = body_value(part, body.max_bytes)
        out["bodyValues"] = values
