"""What the index keeps of a message, parsed once when it is first seen.

``summarize`` never raises on malformed input: a message we cannot make sense of
still gets an id, a size and a date. It runs in worker processes during
reconcile, so it takes and returns plain picklable values.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import re
from dataclasses import dataclass
from email import message_from_bytes
from email.header import decode_header
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime

PREVIEW_CHARS = 256  # RFC 8621 §4.1.4: preview is at most 256 characters
_WS = re.compile(r"\s+")
_MSGID = re.compile(r"<([^<>\s]+)>")
_TAG = re.compile(r"<[^>]*>")
_DROP = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.S | re.I)


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


def to_crlf(raw: bytes) -> bytes:
    """DESIGN: ids hash the message with line endings normalized to CRLF."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def email_id(digest: str) -> str:
    return "M" + digest[:24]


def decode_text(value: str | None) -> str:
    """RFC 2047 encoded words decoded, whitespace folded; never raises."""
    if not value:
        return ""
    if "=?" not in value:
        return _WS.sub(" ", value).strip()
    try:
        parts = decode_header(value)
    except (ValueError, LookupError, UnicodeError, AssertionError):
        return _WS.sub(" ", value).strip()
    out = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            out.append(chunk)
        elif charset is None or charset == "unknown-8bit":
            # decode_header hands back unencoded text as raw-unicode-escape bytes.
            out.append(chunk.decode("raw-unicode-escape", errors="replace"))
        else:
            try:
                out.append(chunk.decode(charset, errors="replace"))
            except LookupError:
                out.append(chunk.decode("utf-8", errors="replace"))
    return _WS.sub(" ", "".join(out)).strip()


def _addresses(value: str | None) -> str:
    if not value:
        return ""
    try:
        pairs = getaddresses([value])
    except (ValueError, IndexError):
        return decode_text(value)
    rendered = []
    for name, address in pairs:
        name = decode_text(name)
        rendered.append(f"{name} <{address}>" if name and address else name or address)
    return ", ".join(r for r in rendered if r)


def _message_ids(value: str | None) -> tuple[str, ...]:
    return tuple(_MSGID.findall(value or ""))


def _sent_at(value: str | None) -> int | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment is None or moment.tzinfo is None:
        return None
    with contextlib.suppress(OverflowError, OSError, ValueError):
        return int(moment.timestamp())
    return None


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "us-ascii"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def _is_attachment(part: Message) -> bool:
    """Close to RFC 8621 §4.1.4: explicit attachments, and anything that is not a
    text body or multipart container (images, PDFs, attached messages)."""
    disposition = (_header(part, "Content-Disposition") or "").split(";")[0].strip().lower()
    if disposition == "attachment":
        return True
    maintype = part.get_content_maintype()
    if maintype == "multipart":
        return False
    if maintype == "text" and part.get_content_subtype() in ("plain", "html", "enriched"):
        return False
    return disposition != "inline" or part.get_filename() is not None


def _header(msg: Message, name: str) -> str | None:
    """The first ``name`` header as text. Raw 8-bit bytes (seen in the wild despite
    RFC 5322) are read as UTF-8 when they are valid UTF-8, else as Latin-1."""
    wanted = name.lower()
    for key, value in msg.raw_items():
        if key.lower() != wanted:
            continue
        if not isinstance(value, str):
            value = str(value)
        try:
            raw = value.encode("ascii", "surrogateescape")
        except UnicodeEncodeError:
            return value
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    return None


def summarize(raw: bytes) -> Summary:
    crlf = to_crlf(raw)
    digest = hashlib.sha256(crlf).hexdigest()
    try:
        return _summarize(raw, digest, len(crlf))
    except Exception:
        # Malformed beyond what the parser tolerates: the message still gets an
        # id, a size and its dates; nothing else about it is guessed.
        return Summary(digest, len(crlf), "", "", "", None, None, (), (), False, "")


def _summarize(raw: bytes, digest: str, size: int) -> Summary:
    msg = message_from_bytes(raw, policy=compat32)
    plain = html_text = None
    has_attachment = False
    for part in msg.walk():
        if part.is_multipart():
            continue
        if part is not msg and _is_attachment(part):
            has_attachment = True
            continue
        subtype = part.get_content_type()
        if subtype == "text/plain" and plain is None:
            plain = _part_text(part)
        elif subtype == "text/html" and html_text is None:
            html_text = _part_text(part)
    if plain is None and html_text is not None:
        plain = html.unescape(_TAG.sub(" ", _DROP.sub(" ", html_text)))
    preview = _WS.sub(" ", plain or "").strip()[:PREVIEW_CHARS]
    message_ids = _message_ids(_header(msg, "Message-ID"))
    return Summary(
        digest=digest,
        size=size,
        subject=decode_text(_header(msg, "Subject")),
        sender=_addresses(_header(msg, "From")),
        to=_addresses(_header(msg, "To")),
        sent_at=_sent_at(_header(msg, "Date")),
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=_message_ids(_header(msg, "In-Reply-To")),
        references=_message_ids(_header(msg, "References")),
        has_attachment=has_attachment,
        preview=preview,
    )


def summarize_file(path: str) -> Summary | None:
    """For the worker pool: None when the file vanished before we read it."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return None
    return summarize(raw)
