"""MIME structure of a message (RFC 8621 §4.1.4): body parts, textBody/htmlBody/
attachments, and body values.

Headers and boundaries are split here from the raw bytes, not by the stdlib
parser, so a part's headers keep their Raw form (§4.1.2.1) and every leaf
keeps the exact bytes its blobId will serve. Parsing is best effort: nothing a
message holds makes it raise.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.utils import collapse_rfc2231_value

from maildir_jmap.mime.headers import as_message_ids, as_text, unfold

MAX_DEPTH = 40  # nested multiparts beyond this are treated as opaque leaves
_LINE = re.compile(rb"\r?\n")
_FIELD_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+")  # RFC 5322 §3.6.8 ftext


@dataclass
class Part:
    headers: list[tuple[str, str]]  # (name, Raw value) in order
    type: str
    params: dict[str, str]
    body: bytes  # still transfer-encoded (leaves); the whole body for multiparts
    part_id: str | None = None
    sub_parts: list[Part] | None = None
    disposition: str | None = None
    disposition_params: dict[str, str] = field(default_factory=dict)
    _by_name: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    _indexed: int = field(default=-1, repr=False, compare=False)

    def header(self, name: str) -> str | None:
        """The last field of that name, Raw (looked up in a name index made on
        first use and again if fields were added: Email/get asks each part for
        a dozen fields)."""
        if self._indexed != len(self.headers):
            self._by_name = {key.lower(): value for key, value in self.headers}
            self._indexed = len(self.headers)
        return self._by_name.get(name.lower())

    @property
    def charset(self) -> str | None:
        if self.params.get("charset"):
            return self.params["charset"].lower()
        return "us-ascii" if self.type.startswith("text/") else None

    @property
    def name(self) -> str | None:
        raw = self.disposition_params.get("filename") or self.params.get("name")
        return as_text(" " + raw) if raw else None

    @property
    def cid(self) -> str | None:
        raw = self.header("Content-Id")
        if raw is None:
            return None
        ids = as_message_ids(raw)
        return ids[0] if ids else unfold(raw).strip().strip("<>") or None

    @property
    def language(self) -> list[str] | None:
        raw = self.header("Content-Language")
        if raw is None:
            return None
        tags = [t.strip() for t in re.sub(r"\([^()]*\)", " ", unfold(raw)).split(",")]
        return [t for t in tags if t] or None

    @property
    def location(self) -> str | None:
        raw = self.header("Content-Location")
        return unfold(raw).strip() if raw is not None else None

    @property
    def encoding(self) -> str:
        raw = self.header("Content-Transfer-Encoding")
        return unfold(raw).strip().lower() if raw else "7bit"

    def decoded(self) -> tuple[bytes, bool]:
        """The content after transfer decoding, and whether that was a problem."""
        encoding = self.encoding
        if encoding == "base64":
            # Lenient: line breaks and stray characters are skipped, padding
            # restored; a dangling single sextet cannot be decoded and is dropped.
            cleaned = self.body.translate(None, NOT_BASE64)
            problem = len(cleaned) % 4 == 1
            if problem:
                cleaned = cleaned[:-1]
            try:
                return base64.b64decode(cleaned + b"=" * (-len(cleaned) % 4)), problem
            except binascii.Error:
                return b"", True
        if encoding == "quoted-printable":
            return binascii.a2b_qp(self.body), False
        return self.body, encoding not in ("7bit", "8bit", "binary", "")

    @property
    def size(self) -> int:
        """The decoded size; base64's is counted, not decoded (what ``decoded``
        makes of the cleaned sextets is exactly this many bytes: a fifth of an
        index build's parsing was decoding attachments only to measure them)."""
        if self.sub_parts is not None:
            return 0
        if self.encoding == "base64":
            sextets = len(self.body.translate(None, NOT_BASE64))
            sextets -= sextets % 4 == 1  # the dangling sextet ``decoded`` drops
            return sextets // 4 * 3 + (0, 0, 1, 2)[sextets % 4]
        return len(self.decoded()[0])


def split_head(data: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """Header fields (name, Raw value) and the body after the blank line."""
    match = re.search(rb"\r?\n\r?\n", data)
    if data.startswith((b"\r\n", b"\n")):
        head, body = b"", data[2 if data.startswith(b"\r\n") else 1 :]
    elif match is None:
        head, body = data, b""
    else:
        head, body = data[: match.start()], data[match.end() :]
    fields: list[tuple[str, bytearray]] = []
    for line in _LINE.split(head):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1][1].extend(b"\r\n" + line)
            continue
        name, sep, value = line.partition(b":")
        if not sep or _FIELD_NAME.fullmatch(name) is None:
            continue  # not a header line: dropped, as lenient parsers do
        fields.append((name.decode("ascii"), bytearray(value)))
    return [(n, bytes(v).decode("utf-8", errors="replace")) for n, v in fields], body


def _content_type(raw: str | None, default: str) -> tuple[str, dict[str, str]]:
    return _params("Content-Type", raw, default)


def _params(header: str, raw: str | None, default: str) -> tuple[str, dict[str, str]]:
    """A structured header's value and parameters (RFC 2045, RFC 2231)."""
    if raw is None:
        return default, {}
    message = Message()
    message[header] = unfold(raw).strip()
    try:
        items = message.get_params(header=header) or []
    except (ValueError, IndexError):
        items = []
    if not items:
        return default, {}
    value = items[0][0].strip().lower() if isinstance(items[0][0], str) else default
    params: dict[str, str] = {}
    for key, param in items[1:]:
        try:
            text = collapse_rfc2231_value(param)
        except (LookupError, ValueError):
            text = param[2] if isinstance(param, tuple) else str(param)
        params[key.lower()] = str(text)
    return value, params


def parse(data: bytes) -> Part:
    """The message's MIME tree with partIds numbered depth-first over leaves."""
    counter = iter(range(1, 1_000_000))
    return _parse(data, "text/plain", counter, 0)


def _parse(data: bytes, default_type: str, counter: Iterator[int], depth: int) -> Part:
    headers, body = split_head(data)
    type_, params = _content_type(_last(headers, "Content-Type"), default_type)
    if "/" not in type_:
        type_ = default_type
    disposition, disposition_params = _params(
        "Content-Disposition", _last(headers, "Content-Disposition"), ""
    )
    part = Part(headers, type_, params, body, None, None, disposition or None, disposition_params)
    boundary = params.get("boundary")
    if type_.startswith("multipart/") and boundary and depth < MAX_DEPTH:
        child_default = "message/rfc822" if type_ == "multipart/digest" else "text/plain"
        part.sub_parts = [
            _parse(chunk, child_default, counter, depth + 1) for chunk in _split(body, boundary)
        ]
    else:
        part.part_id = str(next(counter))
    return part


def _last(headers: list[tuple[str, str]], name: str) -> str | None:
    wanted = name.lower()
    found = [value for key, value in headers if key.lower() == wanted]
    return found[-1] if found else None


_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
NOT_BASE64 = bytes(b for b in range(256) if b not in _ALPHABET)
"""Bytes a lenient base64 decode skips (``bytes.translate`` drops them in C)."""


def _split(body: bytes, boundary: str) -> list[bytes]:
    """The body parts between ``--boundary`` lines (preamble and epilogue dropped).
    A missing close delimiter ends the last part at the end of the body.

    A delimiter is ``--boundary`` at the start of the body or of a line, maybe
    ``--`` (the close delimiter), blanks, then the end of the line or of the body
    (RFC 2046 §5.1.1). Found with ``bytes.find`` (issue 18: a regular expression
    tried at every byte was half of Email/get's time on large attachments)."""
    delimiter = b"--" + boundary.encode("utf-8", "replace")
    size = len(body)
    parts: list[bytes] = []
    start: int | None = None
    at = body.find(delimiter)
    while at >= 0:
        if at == 0:
            line_start = 0
        elif body[at - 1] == 0x0A:  # "\n", maybe after "\r"
            line_start = at - 2 if at >= 2 and body[at - 2] == 0x0D else at - 1
        else:
            at = body.find(delimiter, at + 1)
            continue
        end = at + len(delimiter)
        close = body[end : end + 2] == b"--"
        if close:
            end += 2
        while end < size and body[end] in (0x20, 0x09):
            end += 1
        if not (end == size or body[end] == 0x0A or body[end : end + 2] == b"\r\n"):
            at = body.find(delimiter, at + 1)
            continue
        if start is not None:
            parts.append(body[start:line_start])
        if close:
            start = None
            break
        if body[end : end + 2] == b"\r\n":
            end += 2
        elif body[end : end + 1] == b"\n":
            end += 1
        start = end
        at = body.find(delimiter, end)
    if start is not None:
        parts.append(body[start:])
    return parts


# -- textBody, htmlBody, attachments (the algorithm suggested by RFC 8621 §4.1.4) --------


def _inline_media(type_: str) -> bool:
    return type_.startswith(("image/", "audio/", "video/"))


def decompose(root: Part) -> tuple[list[Part], list[Part], list[Part]]:
    """(textBody, htmlBody, attachments)."""
    text: list[Part] = []
    html: list[Part] = []
    attachments: list[Part] = []
    _walk([root], "mixed", False, html, text, attachments)
    return text, html, attachments


def _walk(
    parts: list[Part],
    multipart_type: str,
    in_alternative: bool,
    html_body: list[Part] | None,
    text_body: list[Part] | None,
    attachments: list[Part],
) -> None:
    text_length = len(text_body) if text_body is not None else -1
    html_length = len(html_body) if html_body is not None else -1
    for i, part in enumerate(parts):
        is_multipart = part.sub_parts is not None
        is_inline = (
            part.disposition != "attachment"
            and (part.type in ("text/plain", "text/html") or _inline_media(part.type))
            and (
                i == 0
                or (multipart_type != "related" and (_inline_media(part.type) or not part.name))
            )
        )
        if is_multipart:
            assert part.sub_parts is not None
            sub_type = part.type.split("/", 1)[1]
            _walk(
                part.sub_parts,
                sub_type,
                in_alternative or sub_type == "alternative",
                html_body,
                text_body,
                attachments,
            )
        elif is_inline:
            if multipart_type == "alternative":
                if part.type == "text/plain" and text_body is not None:
                    text_body.append(part)
                elif part.type == "text/html" and html_body is not None:
                    html_body.append(part)
                else:
                    attachments.append(part)
                continue
            if in_alternative:
                # As in the RFC's JavaScript: the list set to null stays null for
                # the rest of this multipart.
                if part.type == "text/plain":
                    html_body = None
                if part.type == "text/html":
                    text_body = None
            if text_body is not None:
                text_body.append(part)
            if html_body is not None:
                html_body.append(part)
            if (text_body is None or html_body is None) and _inline_media(part.type):
                attachments.append(part)
        else:
            attachments.append(part)
    if multipart_type == "alternative" and text_body is not None and html_body is not None:
        if text_length == len(text_body) and html_length != len(html_body):
            text_body.extend(html_body[html_length:])  # found an HTML part only
        if html_length == len(html_body) and text_length != len(text_body):
            html_body.extend(text_body[text_length:])  # found a plain-text part only


# -- body values -------------------------------------------------------------------------


def body_value(part: Part, max_bytes: int = 0) -> dict[str, object]:
    """The EmailBodyValue of a text part (RFC 8621 §4.1.4): charset-decoded, CRLF as
    LF, truncated to ``max_bytes`` octets of UTF-8 (not mid-codepoint, and for HTML
    not inside a tag) when that is greater than 0."""
    raw, problem = part.decoded()
    charset = part.charset or "us-ascii"
    try:
        codec = codecs.lookup(charset)
    except LookupError:
        codec, problem = codecs.lookup("utf-8"), True
    try:
        text = raw.decode(codec.name)
    except (UnicodeDecodeError, LookupError):
        text = raw.decode(codec.name, errors="replace")
        problem = True
    text, truncated = truncate(text.replace("\r\n", "\n"), part.type == "text/html", max_bytes)
    return {"value": text, "isEncodingProblem": problem, "isTruncated": truncated}


def truncate(text: str, is_html: bool, max_bytes: int) -> tuple[str, bool]:
    """``text`` cut to ``max_bytes`` octets of UTF-8 when that is greater than 0: not
    mid-codepoint, and for HTML not inside a tag (§4.2 maxBodyValueBytes)."""
    if max_bytes <= 0 or len(text) * 4 <= max_bytes:
        return text, False
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text, False
    cut = encoded[:max_bytes].decode("utf-8", errors="ignore")
    if is_html:
        opened, closed = cut.rfind("<"), cut.rfind(">")
        if opened > closed:
            cut = cut[:opened]
    return cut, True
