"""Header field parsed forms (RFC 8621 §4.1.2) and ``header:`` properties (§4.1.3).

Every parser here is best effort and never raises on what a message holds:
malformed input gives ``null`` (MessageIds, Date, URLs) or what could be read.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass
from datetime import timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any

FORMS = ("Raw", "Text", "Addresses", "GroupedAddresses", "MessageIds", "Date", "URLs")

# Fields RFC 5322 and RFC 2369 define, and the forms each may be read in (§4.1.2).
_ADDRESS_FIELDS = {
    "from", "sender", "reply-to", "to", "cc", "bcc",
    "resent-from", "resent-sender", "resent-reply-to", "resent-to", "resent-cc", "resent-bcc",
}  # fmt: skip
_ALLOWED: dict[str, set[str]] = {
    **{f: {"Raw", "Addresses", "GroupedAddresses"} for f in _ADDRESS_FIELDS},
    "subject": {"Raw", "Text"},
    "comments": {"Raw", "Text"},
    "keywords": {"Raw", "Text"},
    "list-id": {"Raw", "Text"},
    "message-id": {"Raw", "MessageIds"},
    "in-reply-to": {"Raw", "MessageIds"},
    "references": {"Raw", "MessageIds"},
    "resent-message-id": {"Raw", "MessageIds"},
    "date": {"Raw", "Date"},
    "resent-date": {"Raw", "Date"},
    **{
        f: {"Raw", "URLs"}
        for f in (
            "list-help",
            "list-unsubscribe",
            "list-subscribe",
            "list-post",
            "list-owner",
            "list-archive",
        )
    },
    # Defined by RFC 5322 but with no parsed form of their own.
    **{f: {"Raw"} for f in ("return-path", "received", "resent-date-x")},
}

_PROPERTY = re.compile(r"header:([\x21-\x39\x3b-\x7e]+)(?::as([A-Za-z]+))?(:all)?")


@dataclass(frozen=True)
class HeaderProperty:
    """A parsed ``header:{name}[:as{form}][:all]`` property name."""

    name: str
    form: str
    all: bool


def parse_property(prop: str) -> HeaderProperty | None:
    """None unless ``prop`` is a well-formed header property whose form the field
    allows (§4.1.2: e.g. ``header:From:asDate`` is refused)."""
    match = _PROPERTY.fullmatch(prop)
    if match is None:
        return None
    name, form, every = match.group(1), match.group(2) or "Raw", bool(match.group(3))
    if form not in FORMS:
        return None
    allowed = _ALLOWED.get(name.lower())
    if allowed is not None and form not in allowed:
        return None
    return HeaderProperty(name, form, every)


# -- Raw and Text ---------------------------------------------------------------------


def raw_text(value: bytes) -> str:
    """§4.1.2.1 Raw: the octets after the colon up to (not including) the final
    CRLF, made valid UTF-8."""
    return value.decode("utf-8", errors="replace")


_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9,))
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def unfold(raw: str) -> str:
    return _FOLD.sub("", raw).rstrip("\r\n")


def decode_word(charset: str, encoding: str, text: str) -> str | None:
    """One RFC 2047 encoded word's text; None when it cannot be decoded (unknown
    charset, broken base64). ``charset`` may carry an RFC 2231 §5 language
    (``US-ASCII*EN``), which says nothing about the octets and is dropped."""
    charset = charset.partition("*")[0]
    try:
        data = text.encode("ascii")
        if encoding in "Bb":
            data = base64.b64decode(data + b"=" * (-len(data) % 4))
        else:  # RFC 2047 §4.2: "_" is a space, "=XX" an octet
            data = _Q_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), data.replace(b"_", b" "))
        return data.decode(charset or "us-ascii", errors="replace")
    except (LookupError, ValueError, binascii.Error):
        return None


def decode_words(text: str) -> str:
    """RFC 2047 encoded words in ``text`` decoded (only well-formed ones that stand
    alone between white space); control characters they encode are dropped."""
    if "=?" not in text:
        return text
    out: list[str] = []
    position = 0
    previous_was_word = False
    for match in _ENCODED_WORD.finditer(text):
        start, end = match.span()
        before = text[position:start]
        standalone = (start == 0 or text[start - 1] in ' \t("') and (
            end == len(text) or text[end] in ' \t)",'
        )
        if not standalone:
            continue
        decoded = decode_word(*match.groups())
        if decoded is None:
            continue  # left as it is
        if not (previous_was_word and before.strip(" \t") == ""):
            out.append(before)  # white space between two encoded words is dropped
        out.append(decoded.translate(_CONTROL))
        position = end
        previous_was_word = True
    out.append(text[position:])
    return "".join(out)


def as_text(raw: str) -> str:
    """§4.1.2.2 Text."""
    text = unfold(raw).lstrip(" ")
    return unicodedata.normalize("NFC", decode_words(text))


# -- Addresses ------------------------------------------------------------------------


def _tokens(text: str) -> list[tuple[str, str]]:
    """Split an address-list into (kind, value) tokens: quoted, comment, angle,
    special (``,:;<>@``), atom (anything else up to white space)."""
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c == '"':
            j, out = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                out.append(text[j])
                j += 1
            tokens.append(("quoted", "".join(out)))
            i = j + 1
        elif c == "(":
            depth, j, out = 1, i + 1, []
            while j < n and depth:
                if text[j] == "\\" and j + 1 < n:
                    out.append(text[j + 1])
                    j += 2
                    continue
                depth += {"(": 1, ")": -1}.get(text[j], 0)
                if depth:
                    out.append(text[j])
                j += 1
            tokens.append(("comment", "".join(out)))
            i = j
        elif c == "<":
            j = _angle_end(text, i + 1)
            tokens.append(("angle", _strip_cfws(text[i + 1 : j])))
            i = j + 1
        elif c in ",:;":
            tokens.append(("special", c))
            i += 1
        else:
            j = i
            while j < n and text[j] not in ' \t\r\n",:;<(':
                j += 1
            tokens.append(("atom", text[i:j]))
            i = j
    return tokens


def _skip_comment(text: str, i: int) -> int:
    """The index just past the comment opening at ``text[i]`` (nesting, escapes)."""
    depth, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def _angle_end(text: str, i: int) -> int:
    """The index of the ``>`` closing an angle-addr whose content starts at ``i``;
    a ``>`` inside a comment or a quoted local part does not close it."""
    n = len(text)
    while i < n:
        c = text[i]
        if c == ">":
            return i
        if c == "(":
            i = _skip_comment(text, i)
            continue
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        i += 1
    return n


def _strip_cfws(addr: str) -> str:
    """An addr-spec without its CFWS: comments and folding white space between
    its tokens are not part of the address (RFC 5322 §3.4.1, A.5:
    ``pete(his account)@silly.test(his host)`` is ``pete@silly.test``)."""
    out: list[str] = []
    i, n = 0, len(addr)
    while i < n:
        c = addr[i]
        if c == "(":
            i = _skip_comment(addr, i)
            continue
        if c == '"':  # a quoted local part is kept as written
            j = i + 1
            while j < n and addr[j] != '"':
                j += 2 if addr[j] == "\\" else 1
            out.append(addr[i : j + 1])
            i = j + 1
            continue
        if c not in " \t\r\n":
            out.append(c)
        i += 1
    return "".join(out)


def _clean_name(parts: list[str]) -> str | None:
    name = " ".join(p for p in parts if p)
    name = _WS.sub(" ", decode_words(name)).strip()
    return unicodedata.normalize("NFC", name) if name else None


_WS = re.compile(r"[ \t\r\n]+")


def _mailbox(tokens: list[tuple[str, str]]) -> dict[str, Any] | None:
    """One mailbox from its tokens: ``name <addr>`` or ``addr (comment)``."""
    if not tokens:
        return None
    angle = next((v for k, v in tokens if k == "angle"), None)
    if angle is not None:
        words = []
        for kind, value in tokens:
            if kind == "angle":
                break
            if kind in ("atom", "quoted"):
                words.append(value)
        return {"name": _clean_name(words), "email": angle.strip()}
    address = "".join(v for k, v in tokens if k in ("atom", "quoted"))
    if not address:
        return None
    # §4.1.2.3: with no display-name, "a comment immediately following the
    # addr-spec" is the name; comments inside the addr-spec are not.
    last_word = max(i for i, (k, _) in enumerate(tokens) if k in ("atom", "quoted"))
    comment = next((v for k, v in tokens[last_word + 1 :] if k == "comment"), None)
    return {"name": _clean_name([comment]) if comment else None, "email": address}


def as_grouped_addresses(raw: str) -> list[dict[str, Any]]:
    """§4.1.2.4 GroupedAddresses (best effort)."""
    text = unfold(raw)
    groups: list[dict[str, Any]] = []
    loose: list[dict[str, Any]] = []
    current: list[tuple[str, str]] = []
    group_name: str | None = None
    group: list[dict[str, Any]] | None = None

    def flush_mailbox() -> None:
        mailbox = _mailbox(current)
        current.clear()
        if mailbox is not None:
            (group if group is not None else loose).append(mailbox)

    def flush_loose() -> None:
        if loose:
            groups.append({"name": None, "addresses": list(loose)})
            loose.clear()

    for kind, value in _tokens(text):
        if (
            kind == "special"
            and value == ":"
            and group is None
            and not any(k == "angle" for k, _ in current)
        ):
            flush_loose()
            group_name = _clean_name([v for k, v in current if k in ("atom", "quoted")])
            current.clear()
            group = []
        elif kind == "special" and value == ";" and group is not None:
            flush_mailbox()
            groups.append({"name": group_name, "addresses": group})
            group, group_name = None, None
        elif kind == "special" and value in ",;":
            flush_mailbox()
        else:
            current.append((kind, value))
    flush_mailbox()
    if group is not None:  # an unterminated group
        groups.append({"name": group_name, "addresses": group})
    flush_loose()
    return groups


def as_addresses(raw: str) -> list[dict[str, Any]]:
    """§4.1.2.3 Addresses: groups flattened."""
    return [address for group in as_grouped_addresses(raw) for address in group["addresses"]]


# -- MessageIds, Date, URLs -----------------------------------------------------------------

_MSG_ID = re.compile(r"<([^<>\s]+)>")
_COMMENT = re.compile(r"\([^()]*\)")


def as_message_ids(raw: str) -> list[str] | None:
    """§4.1.2.5 MessageIds; null when nothing parses."""
    text = _COMMENT.sub(" ", unfold(raw))
    ids = _MSG_ID.findall(text)
    leftover = _MSG_ID.sub(" ", text).strip(" \t,")
    if not ids or leftover:
        return None
    return ids


def as_date(raw: str) -> str | None:
    """§4.1.2.6 Date: an RFC 3339 date-time with its original offset, or null."""
    text = _COMMENT.sub(" ", unfold(raw)).strip()
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment is None:
        return None
    if moment.tzinfo is None:  # "-0000": the time is UTC, the zone unknown
        moment = moment.replace(tzinfo=timezone(timedelta(0)))
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    zone = "Z" if minutes == 0 else f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + zone


def as_urls(raw: str) -> list[str] | None:
    """§4.1.2.7 URLs (RFC 2369 angle-bracketed URLs, comments dropped)."""
    text = _COMMENT.sub(" ", unfold(raw))
    urls = [u.strip() for u in re.findall(r"<([^<>]*)>", text)]
    return [u for u in urls if u] or None


PARSERS = {
    "Raw": lambda raw: raw,
    "Text": as_text,
    "Addresses": as_addresses,
    "GroupedAddresses": as_grouped_addresses,
    "MessageIds": as_message_ids,
    "Date": as_date,
    "URLs": as_urls,
}


def header_value(fields: list[tuple[str, str]], prop: HeaderProperty) -> Any:
    """The value of a ``header:`` property over a message's (name, raw) fields."""
    parse = PARSERS[prop.form]
    wanted = prop.name.lower()
    values = [parse(raw) for name, raw in fields if name.lower() == wanted]
    if prop.all:
        return values
    return values[-1] if values else None
