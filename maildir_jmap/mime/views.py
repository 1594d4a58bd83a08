"""What Email/get shows of a message's content (RFC 8621 §4.1.3, §4.1.4), as plain
values that can be made once and kept (issue 18: parse once, not per request).

- ``envelope_of``: the convenience header properties (from, subject, sentAt, ...);
- ``body_view``: bodyStructure, textBody, htmlBody and attachments with the
  default ``bodyProperties`` and the decoded text of every text/* leaf, so that
  Email/get of whole messages needs neither the file nor the parser; kept as
  JSON text too (``pack_body``, ``BodyText``), so that whole messages are
  spliced as list views are.

Both are made at index time, in the worker pool, from the parse the summary does
anyway (mime/summary.py), and kept in the state directory (store/views.py). An
envelope is kept as the JSON members Email/get writes (``pack_envelope``), so
that a list view's Emails are spliced from text rather than built and serialized
again (mail/email_fragment.py).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack
import orjson

from maildir_jmap.mime.headers import (
    as_addresses,
    as_date,
    as_message_ids,
    as_text,
    header_value,
    parse_property,
)
from maildir_jmap.mime.parse import Part, body_value, decompose

ENVELOPE: dict[str, tuple[str, Callable[[str], Any]]] = {
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
"""Convenience property -> (header field, parsed form), RFC 8621 §4.1.3."""

EnvelopeText = bytes
"""A kept envelope: the convenience properties, then the preview, as the JSON
members an Email/get writes (``"messageId":[...],"inReplyTo":null,...``, in
KEPT's order, comma-separated), behind a head saying where each ends (the
count n in one byte, then n little-endian uint32 ends). An initial sync asks for
all of them for tens of thousands of Emails: it splices the members as they are
(``members``), where reading each value apart and joining it to its key again
cost a fifth of the sync (issue 18); a list view of a few takes them by their
ends (``members_at``). The preview is kept here rather than in the index's
records, where it was a sixth of their memory; an envelope kept before then ends
without it, and counts as not kept (``is_whole``). The form kept before this one
(a msgpack array of the values) is read too (``envelope_text``)."""
KEPT = (*ENVELOPE, "preview")
"""The Email properties an EnvelopeText holds, in its order."""
AT = {prop: position for position, prop in enumerate(KEPT)}
"""A kept property's position in an EnvelopeText."""
_MEMBER_KEYS = [orjson.dumps(prop) + b":" for prop in KEPT]
_ENDS = struct.Struct(f"<{len(KEPT)}I")
FORMER_FORMS = range(0x80, 0xA0)
"""First bytes of the envelopes kept in former forms (a msgpack fixmap of the
parsed values, then a fixarray of their JSON texts); the present form starts with
its count of properties, 11 or 12."""


def envelope_as_text(envelope: Mapping[str, Any], preview: str) -> EnvelopeText:
    """An ``envelope_of`` and the preview, as kept."""
    return pack_envelope(
        [*(orjson.dumps(envelope[prop]) for prop in ENVELOPE), orjson.dumps(preview)]
    )


def pack_envelope(values: list[bytes]) -> EnvelopeText:
    """Each property's value as JSON text, in KEPT's order (all of them, or all but
    the preview), as kept."""
    members = [key + value for key, value in zip(_MEMBER_KEYS[: len(values)], values, strict=True)]
    ends, at = [], -1
    for member in members:
        at += 1 + len(member)
        ends.append(at)
    return struct.pack(f"<B{len(ends)}I", len(ends), *ends) + b",".join(members)


def envelope_text(kept: bytes) -> EnvelopeText:
    """A kept envelope as read: one in a former form is made into this one (a map
    was kept before previews were: it comes back without one, not whole)."""
    if not kept or kept[0] not in FORMER_FORMS:
        return kept
    values = msgpack.unpackb(kept)
    if isinstance(values, dict):
        values = [orjson.dumps(values[prop]) for prop in ENVELOPE]
    return pack_envelope(values)


def is_whole(text: EnvelopeText) -> bool:
    """Whether a kept envelope holds every property of ``KEPT``."""
    return text[0] == len(KEPT)


def members(text: EnvelopeText) -> bytes:
    """All the kept properties as JSON members (``"from":[...],...``)."""
    return text[1 + 4 * text[0] :]


def runs_of(positions: list[int]) -> list[tuple[int, int]]:
    """Sorted ``positions`` as runs of neighbours (first, last): the members of a
    run are one slice of the kept text, commas and all."""
    runs: list[tuple[int, int]] = []
    for at in positions:
        if runs and runs[-1][1] == at - 1:
            runs[-1] = (runs[-1][0], at)
        else:
            runs.append((at, at))
    return runs


def members_at(text: EnvelopeText, runs: list[tuple[int, int]]) -> list[bytes]:
    """The members of the properties in ``runs`` (``runs_of``), one slice a run
    (of a whole envelope: an initial sync without references is two)."""
    ends = _ENDS.unpack_from(text, 1)
    base = 1 + 4 * len(KEPT)
    return [
        text[base + (ends[first - 1] + 1 if first else 0) : base + ends[last]]
        for first, last in runs
    ]


def envelope_values(text: EnvelopeText) -> list[bytes]:
    """Each kept property's value as JSON text, in KEPT's order."""
    count = text[0]
    ends = struct.unpack_from(f"<{count}I", text, 1)
    base, start, out = 1 + 4 * count, 0, []
    for at, end in enumerate(ends):
        out.append(text[base + start + len(_MEMBER_KEYS[at]) : base + end])
        start = end + 1
    return out


DEFAULT_BODY_PROPERTIES = (
    "partId", "blobId", "size", "name", "type", "charset", "disposition", "cid", "language",
    "location",
)  # fmt: skip
DEFAULT_PART = frozenset(DEFAULT_BODY_PROPERTIES)
MAX_VIEW_CHARS = 256_000
"""A message whose text parts hold more than this is not kept whole: Email/get
parses it from its file, as it does for any view not kept."""

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


def envelope_of(headers: list[tuple[str, str]], wanted: frozenset[str] | None = None) -> Any:
    """The convenience properties (all, or ``wanted``) from a header section; the
    last instance of a field counts (§4.1.3)."""
    last: dict[str, str] = {}
    for name, value in headers:
        last[name.lower()] = value
    out: dict[str, Any] = {}
    for prop in ENVELOPE if wanted is None else wanted & ENVELOPE.keys():
        name, parser = ENVELOPE[prop]
        raw = last.get(name.lower())
        out[prop] = parser(raw) if raw is not None else None
    return out


def part_json(
    base: str, part: Part, properties: frozenset[str], *, structure: bool = False
) -> dict[str, Any]:
    """One EmailBodyPart with ``properties``; ``base`` is the Email's blob base
    (mime/summary.py ``blob_base``). In a ``bodyStructure`` (``structure``) a
    multipart always carries its ``subParts``, whatever ``bodyProperties`` says:
    §4.1.4 calls bodyStructure "the full MIME structure of the message body", and
    clients (the JMAP demo webmail among them) ask for bodyProperties without
    subParts and still walk the tree."""
    out: dict[str, Any] = {}
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


def leaves(part: Part) -> list[Part]:
    if part.sub_parts is None:
        return [part]
    return [leaf for child in part.sub_parts for leaf in leaves(child)]


def has_value(part: Part) -> bool:
    """Whether a part has an EmailBodyValue: a text/* leaf (§4.1.4)."""
    return bool(part.part_id) and part.sub_parts is None and part.type.startswith("text/")


Decomposed = tuple[list[Part], list[Part], list[Part]]
"""(textBody, htmlBody, attachments) as parse.decompose gives them."""
Values = dict[str, list[Any]]
"""partId -> [text, isEncodingProblem, isHtml] of each text/* leaf."""


def text_values(root: Part) -> Values:
    """Every text leaf's EmailBodyValue, decoded once for all that need it."""
    values: Values = {}
    for part in leaves(root):
        if has_value(part) and str(part.part_id) not in values:
            value = body_value(part)
            values[str(part.part_id)] = [
                str(value["value"]),
                value["isEncodingProblem"],
                part.type == "text/html",
            ]
    return values


def body_view(
    root: Part, base: str, parts: Decomposed | None = None, values: Values | None = None
) -> dict[str, Any] | None:
    """Everything Email/get shows of the body with the default bodyProperties, and
    ``values``; None when their text is larger than MAX_VIEW_CHARS. ``parts`` and
    ``values``: this message's, when the caller has them already."""
    values = text_values(root) if values is None else values
    if sum(len(v[0]) for v in values.values()) > MAX_VIEW_CHARS:
        return None
    text_body, html_body, attachments = decompose(root) if parts is None else parts
    return {
        "bodyStructure": part_json(base, root, DEFAULT_PART, structure=True),
        "textBody": [part_json(base, p, DEFAULT_PART) for p in text_body],
        "htmlBody": [part_json(base, p, DEFAULT_PART) for p in html_body],
        "attachments": [part_json(base, p, DEFAULT_PART) for p in attachments],
        "text": [p.part_id for p in text_body],
        "html": [p.part_id for p in html_body],
        "leaves": [p.part_id for p in leaves(root)],
        "values": values,
    }


BODY_LISTS = ("bodyStructure", "textBody", "htmlBody", "attachments")


@dataclass(frozen=True, slots=True)
class BodyText:
    """A kept body view as Email/get writes it: each of BODY_LISTS as JSON text,
    the partIds that fetchTextBodyValues, fetchHTMLBodyValues and
    fetchAllBodyValues choose, and each text leaf's value."""

    lists: dict[str, bytes]
    text: list[str]
    html: list[str]
    leaves: list[str]
    values: dict[str, list[Any]]
    """partId -> [value as JSON text, isEncodingProblem, isHtml, UTF-8 length]."""

    def chosen(self, text: bool, html: bool, every: bool) -> list[str]:
        """The partIds whose values the fetch*BodyValues arguments ask for, each
        once, in the order Email/get lists them (RFC 8621 §4.2)."""
        wanted = [*(self.leaves if every else ()), *(self.text if text else ()),
                  *(self.html if html else ())]  # fmt: skip
        return [p for p in dict.fromkeys(wanted) if p in self.values]

    def value(self, part_id: str) -> str:
        """A leaf's text as a string (to truncate it, or for an in-process caller)."""
        text: str = orjson.loads(self.values[part_id][0])
        return text

    @classmethod
    def of(cls, view: Mapping[str, Any]) -> BodyText:
        """A ``body_view`` as JSON text."""
        values = {
            part_id: [orjson.dumps(text), problem, is_html, len(text.encode("utf-8"))]
            for part_id, (text, problem, is_html) in view["values"].items()
        }
        lists = {name: orjson.dumps(view[name]) for name in BODY_LISTS}
        return cls(lists, view["text"], view["html"], view["leaves"], values)

    def packed(self) -> bytes:
        """As kept (``body_text`` undoes it)."""
        lists = [self.lists[name] for name in BODY_LISTS]
        packed: bytes = msgpack.packb([*lists, self.text, self.html, self.leaves, self.values])
        return packed


def pack_body(view: Mapping[str, Any]) -> bytes:
    """A ``body_view`` as kept: its lists and values as JSON text."""
    return BodyText.of(view).packed()


def body_text(packed: bytes) -> BodyText:
    """A kept body view. One kept before body views were JSON text (a msgpack map
    of ``body_view``) is read as well, so an index built earlier serves without
    being rebuilt."""
    kept = msgpack.unpackb(packed)
    if isinstance(kept, dict):
        return BodyText.of(kept)
    *lists, text, html, every, values = kept
    return BodyText(dict(zip(BODY_LISTS, lists, strict=True)), text, html, every, values)
