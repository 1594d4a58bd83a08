"""An Email object for creation (RFC 8621 §4.6) written as a MIME message.

Theory of operation. ``compose`` checks the §4.6 constraints (one property per
header field, no ``headers``, no Content-* at the top, partId xor blobId, ...),
turns ``textBody``/``htmlBody``/``attachments`` into the tree a client expects
(multipart/alternative for text + HTML, multipart/related for inline parts with
a cid, multipart/mixed for attachments) or takes ``bodyStructure`` as given, and
writes it: header lines folded at 78 columns (RFC 5322 §2.1.1), non-ASCII text
as encoded words, bodies in 7bit when they are short-lined ASCII, else
quoted-printable for text and base64 for the rest, message/* parts never
encoded (RFC 2046 §5.2.1). Date and Message-ID are added when absent. Parsing
the result with ``mime/parse`` gives back the JSON that went in (the tests check
that round trip); what it cannot express raises ``ComposeError`` naming the
offending properties.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

from maildir_jmap.mime.header_encode import BadValue, encode_field
from maildir_jmap.mime.headers import parse_property

BlobLookup = Callable[[str], bytes | None]

# Convenience properties (§4.1.3) -> (field name, form).
CONVENIENCE = {
    "from": ("From", "Addresses"),
    "sender": ("Sender", "Addresses"),
    "replyTo": ("Reply-To", "Addresses"),
    "to": ("To", "Addresses"),
    "cc": ("Cc", "Addresses"),
    "bcc": ("Bcc", "Addresses"),
    "subject": ("Subject", "Text"),
    "sentAt": ("Date", "Date"),
    "messageId": ("Message-ID", "MessageIds"),
    "inReplyTo": ("In-Reply-To", "MessageIds"),
    "references": ("References", "MessageIds"),
}
BODY = ("bodyStructure", "textBody", "htmlBody", "attachments", "bodyValues")
METADATA = ("mailboxIds", "keywords", "receivedAt")
PART_PROPERTIES = frozenset(
    {"partId", "blobId", "size", "type", "charset", "disposition", "cid", "language"}
    | {"location", "name", "subParts", "headers"}
)
# Fields the part properties above write; a header: property may not repeat them.
PART_FIELDS = frozenset(
    {"content-type", "content-disposition", "content-id", "content-language"}
    | {"content-location", "content-transfer-encoding"}
)
MAX_LINE = 998  # RFC 5322 §2.1.1
_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]{1,64}/[a-z0-9!#$&^_.+-]{1,64}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class ComposeError(ValueError):
    """The object breaks a §4.6 rule: ``properties`` are the paths at fault."""

    def __init__(self, properties: list[str], description: str) -> None:
        super().__init__(description)
        self.properties = properties
        self.description = description


class MissingBlobs(LookupError):
    def __init__(self, blob_ids: list[str]) -> None:
        super().__init__(", ".join(blob_ids))
        self.blob_ids = blob_ids


class TooLarge(ValueError):
    pass


@dataclass
class _Leaf:
    path: str
    headers: list[str]
    type: str
    params: dict[str, str]
    data: bytes = b""
    is_text_value: bool = False
    sub_parts: list[_Leaf] = field(default_factory=list)


def _fail(path: str, description: str) -> ComposeError:
    return ComposeError([path], description)


def _header_fields(
    obj: dict[str, Any], path: str, convenience: bool
) -> tuple[dict[str, str], dict[str, str]]:
    """(lower-case field name -> encoded line, lower-case name -> the property that
    sets it) from ``header:`` (and, at the top, convenience) properties; two
    properties for one field is an error (§4.6)."""
    lines: dict[str, str] = {}
    owner: dict[str, str] = {}
    for key, value in obj.items():
        if convenience and key in CONVENIENCE:
            name, form = CONVENIENCE[key]
            every = False
        elif key.startswith("header:"):
            prop = parse_property(key)
            if prop is None:
                raise _fail(path + key, "not a header property, or a form this field forbids")
            name, form, every = prop.name, prop.form, prop.all
        else:
            continue
        lower = name.lower()
        if lower in owner:
            raise ComposeError([path + owner[lower], path + key], f"two properties set {name}")
        owner[lower] = key
        if value is None:
            continue
        values = value if every else [value]
        if every and not isinstance(value, list):
            raise _fail(path + key, ":all takes a list")
        try:
            lines[lower] = "\r\n".join(encode_field(name, form, v) for v in values)
        except BadValue as exc:
            raise _fail(path + key, str(exc)) from None
    return lines, owner


def _param(name: str, value: str) -> str:
    """A Content-Type/Disposition parameter: a token, a quoted string, or RFC 2231
    percent-encoding for anything non-ASCII."""
    if any(ord(c) > 126 or ord(c) < 32 for c in value):
        return f"{name}*=utf-8''{quote(value, safe='')}"
    if _TOKEN.fullmatch(value):
        return f"{name}={value}"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{name}="{escaped}"'


def _with_params(name: str, value: str, params: dict[str, str]) -> str:
    line = f"{name}: {value}"
    column = len(line)
    for key, param_value in params.items():
        piece = _param(key, param_value)
        if column + len(piece) + 2 > 78:
            line += ";\r\n " + piece
            column = 1 + len(piece)
        else:
            line += "; " + piece
            column += len(piece) + 2
    return line


def _string(part: dict[str, Any], key: str, path: str) -> str | None:
    value = part.get(key)
    if value is not None and not isinstance(value, str):
        raise _fail(path + key, "must be a string or null")
    if value is not None and re.search(r"[\r\n\x00]", value):
        raise _fail(path + key, "must not contain CR, LF or NUL")
    return value


class _Composer:
    def __init__(self, obj: dict[str, Any], lookup: BlobLookup) -> None:
        self.lookup = lookup
        self.missing: list[str] = []
        values = obj.get("bodyValues", {})
        if not isinstance(values, dict):
            raise _fail("bodyValues", "must be an object")
        self.values: dict[str, str] = {}
        for part_id, body_value in values.items():
            if not isinstance(body_value, dict) or not isinstance(body_value.get("value"), str):
                raise _fail(f"bodyValues/{part_id}", "an EmailBodyValue needs a string value")
            if set(body_value) - {"value", "isEncodingProblem", "isTruncated"}:
                raise _fail(f"bodyValues/{part_id}", "unknown EmailBodyValue property")
            if body_value.get("isEncodingProblem") or body_value.get("isTruncated"):
                raise _fail(f"bodyValues/{part_id}", "isEncodingProblem/isTruncated must be false")
            self.values[part_id] = body_value["value"]

    def part(self, part: Any, path: str, default_type: str, top: set[str]) -> _Leaf:
        if not isinstance(part, dict):
            raise _fail(path.rstrip("/"), "an EmailBodyPart must be an object")
        unknown = [k for k in part if k not in PART_PROPERTIES and not k.startswith("header:")]
        if unknown or "headers" in part:
            raise ComposeError(
                [path + k for k in [*unknown, *(["headers"] if "headers" in part else [])]],
                "not a property an EmailBodyPart may be created with (§4.6)",
            )
        extra, owner = _header_fields(part, path, convenience=False)
        clash = [owner[k] for k in owner if k in PART_FIELDS or k in top]
        if clash:
            raise _fail(path + clash[0], "this field is set by another property")
        type_ = (_string(part, "type", path) or default_type).lower()
        if not _TYPE.fullmatch(type_):
            raise _fail(path + "type", "not a media type")
        headers = list(extra.values())
        params: dict[str, str] = {}
        sub_parts = part.get("subParts")
        if type_.startswith("multipart/") or sub_parts is not None:
            if not type_.startswith("multipart/") or not isinstance(sub_parts, list):
                raise _fail(path + "subParts", "subParts go with a multipart type")
            if any(k in part for k in ("partId", "blobId", "charset")):
                raise _fail(path + "type", "a multipart has subParts, not content")
            leaf = _Leaf(path, headers, type_, params)
            leaf.sub_parts = [
                self.part(child, f"{path}subParts/{i}/", "text/plain", top)
                for i, child in enumerate(sub_parts)
            ]
            self._describe(leaf, part, path)
            return leaf
        leaf = _Leaf(path, headers, type_, params)
        part_id, blob_id = part.get("partId"), part.get("blobId")
        if (part_id is None) == (blob_id is None):
            raise _fail(path + "partId", "give exactly one of partId and blobId")
        if part_id is not None:
            if "charset" in part or "size" in part:
                key = "charset" if "charset" in part else "size"
                raise _fail(path + key, "not allowed with partId (§4.6)")
            if not isinstance(part_id, str) or part_id not in self.values:
                raise _fail(path + "partId", "no such bodyValues entry")
            if not type_.startswith("text/"):
                raise _fail(path + "type", "bodyValues hold text: the type must be text/*")
            text = self.values[part_id].replace("\r\n", "\n").replace("\r", "\n")
            leaf.data = text.encode("utf-8")
            leaf.is_text_value = True
            params["charset"] = "utf-8"
        else:
            if not isinstance(blob_id, str):
                raise _fail(path + "blobId", "must be a string")
            found = self.lookup(blob_id)
            if found is None:
                self.missing.append(blob_id)
            else:
                leaf.data = found
            charset = _string(part, "charset", path)
            if charset is not None:
                params["charset"] = charset
        self._describe(leaf, part, path)
        return leaf

    def _describe(self, leaf: _Leaf, part: dict[str, Any], path: str) -> None:
        name = _string(part, "name", path)
        disposition = _string(part, "disposition", path)
        if name is not None:
            leaf.params["name"] = name
        if disposition is not None:
            if not _TOKEN.fullmatch(disposition):
                raise _fail(path + "disposition", "not a disposition type")
            leaf.headers.append(
                _with_params(
                    "Content-Disposition",
                    disposition.lower(),
                    {"filename": name} if name is not None else {},
                )
            )
        cid = _string(part, "cid", path)
        if cid is not None:
            if any(c in cid for c in " <>"):
                raise _fail(path + "cid", "a Content-ID is written without <>")
            leaf.headers.append(f"Content-ID: <{cid}>")
        language = part.get("language")
        if language is not None:
            if not isinstance(language, list) or not all(
                isinstance(t, str) and re.fullmatch(r"[A-Za-z0-9-]{1,35}", t) for t in language
            ):
                raise _fail(path + "language", "a list of language tags")
            if language:
                leaf.headers.append("Content-Language: " + ", ".join(language))
        location = _string(part, "location", path)
        if location is not None:
            leaf.headers.append(f"Content-Location: {location}")


def _encode_body(leaf: _Leaf) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, CRLF body) for a leaf."""
    data = leaf.data
    if leaf.type.startswith("message/"):
        body = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        return ("7bit" if body.isascii() else "8bit"), body
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    plain = data.isascii() and b"\r" not in data.replace(b"\r\n", b"")
    if plain and all(len(line) <= MAX_LINE for line in lines) and leaf.type.startswith("text/"):
        return "7bit", b"\r\n".join(lines)
    if leaf.is_text_value or (leaf.type.startswith("text/") and leaf.params.get("charset")):
        encoded = binascii.b2a_qp(b"\n".join(lines), istext=True)
        return "quoted-printable", encoded.replace(b"\n", b"\r\n")
    return "base64", base64.encodebytes(data).replace(b"\n", b"\r\n").rstrip(b"\r\n")


def _render(leaf: _Leaf) -> tuple[list[str], bytes]:
    """The part's MIME header lines and its CRLF body."""
    if leaf.sub_parts:
        boundary = "=_" + secrets.token_hex(12)
        chunks = []
        for child in leaf.sub_parts:
            head, body = _render(child)
            chunks.append(b"--" + boundary.encode() + b"\r\n" + _head(head) + b"\r\n" + body)
        body = b"\r\n".join(chunks) + b"\r\n--" + boundary.encode() + b"--\r\n"
        params = {**leaf.params, "boundary": boundary}
        return [_with_params("Content-Type", leaf.type, params), *leaf.headers], body
    encoding, body = _encode_body(leaf)
    content_type = _with_params("Content-Type", leaf.type, leaf.params)
    return [content_type, f"Content-Transfer-Encoding: {encoding}", *leaf.headers], body


def _head(lines: list[str]) -> bytes:
    return b"".join(line.encode("utf-8") + b"\r\n" for line in lines)


def _structure(composer: _Composer, obj: dict[str, Any], top: set[str]) -> _Leaf:
    if "bodyStructure" in obj:
        clash: list[str] = [k for k in ("textBody", "htmlBody", "attachments") if k in obj]
        if clash:
            raise ComposeError(clash, "bodyStructure excludes textBody/htmlBody/attachments")
        return composer.part(obj["bodyStructure"], "bodyStructure/", "text/plain", top)
    bodies: dict[str, _Leaf] = {}
    for key, wanted in (("textBody", "text/plain"), ("htmlBody", "text/html")):
        if key not in obj:
            continue
        value = obj[key]
        if not isinstance(value, list) or len(value) != 1:
            raise _fail(key, "must hold exactly one body part (§4.6)")
        leaf = composer.part(value[0], f"{key}/0/", wanted, top)
        if leaf.type != wanted:
            raise _fail(f"{key}/0/type", f"must be {wanted} (§4.6)")
        bodies[key] = leaf
    attachments = obj.get("attachments", [])
    if not isinstance(attachments, list):
        raise _fail("attachments", "must be a list of EmailBodyParts")
    extra = [
        composer.part(a, f"attachments/{i}/", "application/octet-stream", top)
        for i, a in enumerate(attachments)
    ]
    inline = [a for a in extra if any(h.startswith("Content-ID:") for h in a.headers)]
    attached = [a for a in extra if a not in inline] if "htmlBody" in bodies else extra
    for leaf in attached:
        if not any(h.startswith("Content-Disposition:") for h in leaf.headers):
            name = leaf.params.get("name")
            leaf.headers.append(
                _with_params(
                    "Content-Disposition", "attachment", {"filename": name} if name else {}
                )
            )
    html = bodies.get("htmlBody")
    if html is not None and inline:
        html = _Leaf("", [], "multipart/related", {}, sub_parts=[html, *inline])
    text = bodies.get("textBody")
    if text is not None and html is not None:
        body = _Leaf("", [], "multipart/alternative", {}, sub_parts=[text, html])
    else:
        body = text or html or _Leaf("", [], "text/plain", {}, is_text_value=True)
        if body.is_text_value and not body.params:
            body.params["charset"] = "utf-8"
    if attached:
        return _Leaf("", [], "multipart/mixed", {}, sub_parts=[body, *attached])
    return body


def compose(
    obj: dict[str, Any],
    lookup: BlobLookup,
    *,
    max_size: int,
    now: datetime | None = None,
    hostname: str | None = None,
) -> bytes:
    """The message for an Email/set create object (metadata properties ignored)."""
    known = {*CONVENIENCE, *BODY, *METADATA}
    problems = [k for k in obj if k not in known and not k.startswith("header:")]
    if problems:
        raise ComposeError(problems, "not a property an Email may be created with (§4.6)")
    top, owner = _header_fields(obj, "", convenience=True)
    content = [owner[k] for k in owner if k.startswith("content-")]
    if content:
        raise _fail(content[0], "Content-* fields belong on body parts (§4.6)")
    composer = _Composer(obj, lookup)
    root = _structure(composer, obj, set(owner))
    if composer.missing:
        raise MissingBlobs(composer.missing)
    lines = list(top.values())
    if "date" not in top:
        lines.append("Date: " + format_datetime(now or datetime.now(UTC)))
    if "message-id" not in top:
        lines.append(f"Message-ID: <{secrets.token_hex(16)}@{_domain(obj, hostname)}>")
    lines.append("MIME-Version: 1.0")
    head, body = _render(root)
    raw = _head(lines + head) + b"\r\n" + body
    if len(raw) > max_size:
        raise TooLarge(f"the message would be {len(raw)} octets, more than {max_size}")
    return raw


def _domain(obj: dict[str, Any], hostname: str | None) -> str:
    """Message-IDs name the sender's domain, as mail clients do; else this host."""
    senders = obj.get("from")
    if isinstance(senders, list) and senders and isinstance(senders[0], dict):
        address = senders[0].get("email")
        if isinstance(address, str) and "@" in address:
            domain = address.rsplit("@", 1)[1]
            if re.fullmatch(r"[A-Za-z0-9.-]{1,253}", domain):
                return domain
    return hostname or socket.gethostname() or "localhost"
