"""Header field values written from their parsed forms (RFC 8621 §4.1.2, used by
Email/set create, §4.6): the inverse of ``mime/headers``.

Each encoder takes the JSON value of one form and returns the field body as it
goes after ``Name:`` (folded with CRLF + space, RFC 5322 §2.2.3), or raises
``BadValue``. Non-ASCII text becomes RFC 2047 encoded words; addresses keep
their UTF-8 local part and domain (RFC 6532), since RFC 2047 may not encode an
addr-spec. No value may smuggle a line break: that would let a client inject
header fields (or a body) of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from email.header import Header
from email.utils import format_datetime
from typing import Any

LINE = 78  # RFC 5322 §2.1.1: lines SHOULD be no more than 78 characters
_ATOM_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')
_ENCODED_WORDISH = re.compile(r"=\?")
_BREAK = re.compile(r"[\r\n\x00]")
_RAW_BREAK = re.compile(r"\r\n(?![ \t])|\r(?!\n)|(?<!\r)\n|\x00")


class BadValue(ValueError):
    """The JSON value does not fit the form (wrong type, or a line break)."""


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise BadValue(f"{what} must be a string")
    if _BREAK.search(value):
        raise BadValue(f"{what} must not contain CR, LF or NUL")
    return value


def fold(name: str, words: list[str], separator: str = " ") -> str:
    """Join ``words`` with ``separator``, breaking lines before a word that would
    pass 78 columns (counting ``Name: ``). A single long word stays whole."""
    out = ""
    column = len(name) + 2
    for i, word in enumerate(words):
        piece = word if i == 0 else separator.rstrip(" ") + " " + word
        if i and column + len(piece) > LINE:
            out += separator.rstrip(" ") + "\r\n " + word
            column = 1 + len(word)
        else:
            out += piece
            column += len(piece)
    return out


def encode_raw(name: str, value: Any) -> str:
    """§4.1.2.1: taken as it is, leading space included; a fold (CRLF then white
    space) is allowed, any other line break is not."""
    if not isinstance(value, str):
        raise BadValue("asRaw value must be a string")
    if _RAW_BREAK.search(value):
        raise BadValue("asRaw value has a line break that is not a fold")
    return value[1:] if value.startswith(" ") else value


def encode_text(name: str, value: Any) -> str:
    text = _text(value, "asText value")
    needs_words = any(ord(c) > 126 or (ord(c) < 32 and c != "\t") for c in text)
    if not needs_words and not _ENCODED_WORDISH.search(text):
        return fold(name, text.split(" ")) if text else ""
    # RFC 2047 §5(1): the whole unstructured value as encoded words.
    header = Header(text, charset="utf-8", header_name=name, maxlinelen=LINE)
    return header.encode(linesep="\r\n")


def _display_name(name: str) -> str:
    if any(ord(c) > 126 for c in name):
        return Header(name, charset="utf-8").encode(maxlinelen=10_000).replace("\r\n ", " ")
    if _ATOM_SPECIALS.search(name) or name != name.strip() or not name:
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    return name


def _address(value: Any) -> str:
    if not isinstance(value, dict) or set(value) - {"name", "email"}:
        raise BadValue("an EmailAddress is an object with name and email")
    email = _text(value.get("email"), "email")
    if not email or any(c in email for c in " <>,;\t"):
        raise BadValue(f"not an address: {email!r}")
    name = value.get("name")
    if name is None or name == "":
        return email
    return f"{_display_name(_text(name, 'name'))} <{email}>"


def _address_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise BadValue("asAddresses value must be a list")
    return [_address(a) for a in value]


def encode_addresses(name: str, value: Any) -> str:
    return fold(name, _address_list(value), ", ")


def encode_grouped(name: str, value: Any) -> str:
    if not isinstance(value, list):
        raise BadValue("asGroupedAddresses value must be a list")
    words: list[str] = []
    for group in value:
        if not isinstance(group, dict) or set(group) - {"name", "addresses"}:
            raise BadValue("an EmailAddressGroup is an object with name and addresses")
        members = _address_list(group.get("addresses"))
        label = group.get("name")
        if label is None:
            words.extend(members)
        else:
            words.append(f"{_display_name(_text(label, 'group name'))}: {', '.join(members)};")
    return fold(name, words, ", ")


def encode_message_ids(name: str, value: Any) -> str:
    if not isinstance(value, list) or not value:
        raise BadValue("asMessageIds value must be a non-empty list")
    ids = []
    for mid in value:
        text = _text(mid, "message id")
        if not text or any(c in text for c in " <>\t") or "@" not in text:
            raise BadValue(f"not a message id: {text!r}")
        ids.append(f"<{text}>")
    return fold(name, ids)


def encode_date(name: str, value: Any) -> str:
    """§4.1.2.6: an RFC 3339 date-time (the Date type of RFC 8620 §1.4, offset kept)."""
    text = _text(value, "asDate value")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadValue(f"not a date: {text!r}") from None
    if moment.tzinfo is None or "T" not in text.upper():
        raise BadValue(f"a date needs a time and an offset: {text!r}")
    return format_datetime(moment)


def encode_urls(name: str, value: Any) -> str:
    if not isinstance(value, list) or not value:
        raise BadValue("asURLs value must be a non-empty list")
    urls = []
    for url in value:
        text = _text(url, "URL")
        if any(c in text for c in " <>\t"):
            raise BadValue(f"not a URL: {text!r}")
        urls.append(f"<{text}>")
    return fold(name, urls, ", ")


ENCODERS: dict[str, Callable[[str, Any], str]] = {
    "Raw": encode_raw,
    "Text": encode_text,
    "Addresses": encode_addresses,
    "GroupedAddresses": encode_grouped,
    "MessageIds": encode_message_ids,
    "Date": encode_date,
    "URLs": encode_urls,
}

NAME = re.compile(r"[\x21-\x39\x3b-\x7e]{1,76}")  # RFC 5322 §3.6.8 field-name


def encode_field(name: str, form: str, value: Any) -> str:
    """One ``Name: body`` line (CRLF folds inside, no final CRLF)."""
    if not NAME.fullmatch(name):
        raise BadValue(f"not a header field name: {name!r}")
    body = ENCODERS[form](name, value)
    return f"{name}: {body}" if body else f"{name}:"
