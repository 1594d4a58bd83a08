"""What the index keeps of a message, parsed once when it is first seen.

``summarize`` never raises on malformed input: a message we cannot make sense of
still gets an id, a size and a date. It runs in worker processes during
reconcile, so it takes and returns plain picklable values. It reads the message
with the same parser and decomposition as Email/get, so hasAttachment and
preview agree with what a client is shown.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from maildir_jmap.mime.parse import Part, body_value, decompose, parse
from maildir_jmap.mime.text import document_of, html_to_text
from maildir_jmap.mime.views import (
    Values,
    body_view,
    envelope_as_text,
    envelope_of,
    pack_body,
    text_values,
)

PREVIEW_CHARS = 256  # RFC 8621 §4.1.4: preview is at most 256 characters
_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class Summary:
    digest: str  # hex SHA-256 of the CRLF form (the Email id and blobId derive from it)
    size: int  # octets in CRLF form (RFC822.SIZE, Dovecot's W=)
    subject: str
    sender: str
    to: str
    sent_at: int | None
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    has_attachment: bool
    preview: str
    derived: Derived | None = None
    """What else the index keeps of the message, when asked for: made from the
    same parse at index time; the caller takes it out before keeping the summary."""


@dataclass(frozen=True)
class Derived:
    """A message's derived state, made in the worker pool from the summary's parse."""

    document: dict[str, str]
    """The search index's columns (mime/text.py)."""
    envelope: bytes
    """mime/views.py ``envelope_of`` as kept (``pack_envelope``)."""
    body: bytes | None
    """mime/views.py ``body_view``, packed; None: too large to keep."""
    received: int | None = None
    """The file's mtime when the worker read it (``summarize_file``)."""


def to_crlf(raw: bytes) -> bytes:
    """DESIGN: ids hash the message with line endings normalized to CRLF."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def email_id(digest: str) -> str:
    return "M" + digest[:24]


def blob_base(email_id: str) -> str:
    """``P<email hash>``: a part's blobId is this, ``_`` and its partId, resolvable
    without a table (DESIGN: Identity; '_' rather than '.', which an Id may not
    contain, RFC 8620 §1.2). Parts of parsed blobs chain on: ``<blobId>_<partId>``."""
    return f"P{email_id[1:]}"


def render(addresses: list[dict[str, Any]]) -> str:
    """EmailAddress objects as one line, "Name <email>, email" (for sorting and
    substring filters)."""
    return ", ".join(f"{a['name']} <{a['email']}>" if a["name"] else a["email"] for a in addresses)


def summarize(raw: bytes, derive: bool = False, received: int | None = None) -> Summary:
    """``received``: the file's mtime, kept in the derived state (``Derived``)."""
    crlf = to_crlf(raw)
    digest = hashlib.sha256(crlf).hexdigest()
    try:
        return _summarize(crlf, digest, len(crlf), derive, received)
    except Exception:
        # Malformed beyond what the parser tolerates: the message still gets an
        # id, a size and its dates; nothing else about it is guessed.
        return Summary(digest, len(crlf), "", "", "", None, None, (), (), False, "")


def preview_of(
    parts: tuple[list[Part], list[Part], list[Part]],
    values: Values | None = None,
) -> str:
    """RFC 8621 §4.1.4 preview: the first text body part's text, HTML as plain
    text, whitespace runs as one space, at most PREVIEW_CHARS characters.
    ``parts`` is ``decompose``'s; ``values`` the decoded texts, if made already."""
    text, html, _ = parts
    for part in text or html:
        if part.type in ("text/plain", "text/html"):
            kept = values.get(str(part.part_id)) if values is not None else None
            value = kept[0] if kept is not None else str(body_value(part)["value"])
            preview = html_to_text(value) if part.type == "text/html" else value
            return _collapsed_start(preview)
    return ""


def _collapsed_start(text: str) -> str:
    """``_WS.sub(" ", text).strip()[:PREVIEW_CHARS]`` reading only as much of
    ``text`` as that needs: white space collapsed in a prefix is a prefix of it
    collapsed in the whole, so once a prefix gives more than PREVIEW_CHARS the
    rest cannot change the answer (a long body's whole text was a tenth of an
    index build's parsing)."""
    length = 4 * PREVIEW_CHARS
    while True:
        start = _WS.sub(" ", text[:length]).strip()
        if len(start) > PREVIEW_CHARS or length >= len(text):
            return start[:PREVIEW_CHARS]
        length *= 4


def _timestamp(date: str | None) -> int | None:
    return int(datetime.fromisoformat(date.replace("Z", "+00:00")).timestamp()) if date else None


def _summarize(crlf: bytes, digest: str, size: int, derive: bool, received: int | None) -> Summary:
    # The CRLF form, as Email/get parses it: part sizes in the views must match.
    root = parse(crlf)
    envelope = envelope_of(root.headers)  # the last instance counts (RFC 8621 §4.1.3)
    parts = decompose(root)
    attachments = parts[2]
    values = text_values(root) if derive else None
    preview = preview_of(parts, values)
    message_ids = envelope["messageId"]
    derived = None
    if values is not None:
        body = body_view(root, blob_base(email_id(digest)), parts, values)
        derived = Derived(
            document=document_of(root, parts, values),
            envelope=envelope_as_text(envelope, preview),
            body=None if body is None else pack_body(body),
            received=received,
        )
    return Summary(
        digest=digest,
        size=size,
        subject=envelope["subject"] or "",
        sender=render(envelope["from"] or []),
        to=render(envelope["to"] or []),
        sent_at=_timestamp(envelope["sentAt"]),
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=tuple(envelope["inReplyTo"] or ()),
        references=tuple(envelope["references"] or ()),
        # RFC 8621 §4.1.4: attachments other than inline ones make hasAttachment.
        has_attachment=any(p.disposition != "inline" for p in attachments),
        preview=preview,
        derived=derived,
    )


@dataclass(frozen=True)
class Unreadable:
    """A message file that exists but cannot be read (EACCES, EIO, ...)."""

    error: str


def summarize_file(path: str, derive: bool = False) -> Summary | Unreadable | None:
    """For the worker pool: None when the file vanished before we read it, and
    Unreadable (not an exception: one bad file must not stop a whole scan) when
    it is there but cannot be read; ``derive``: its derived state too."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
            mtime = int(os.fstat(handle.fileno()).st_mtime) if derive else None
    except FileNotFoundError:
        return None
    except OSError as exc:
        return Unreadable(exc.strerror or type(exc).__name__)
    return summarize(raw, derive, mtime)
