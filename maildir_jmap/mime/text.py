"""The searchable text of a message: decoded header fields, its body text, the
text of its text/* attachments and the file names of its attachments (issue 18:
a word only an attachment's name carried was never found; RFC 8621 §4.4.1
``text`` SHOULD look inside any part that can be turned into text)."""

from __future__ import annotations

import html
import re
from typing import Any

from maildir_jmap.mime.headers import as_addresses, as_text
from maildir_jmap.mime.parse import Part, body_value, decompose, parse

MAX_BODY_CHARS = 200_000  # enough for any human-written mail; bounds the index
_TAG = re.compile(r"<[^>]*>")
_DROP = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.S | re.I)


def html_to_text(markup: str) -> str:
    return html.unescape(_TAG.sub(" ", _DROP.sub(" ", markup)))


def _addresses(part: Part, name: str) -> str:
    values = [v for n, v in part.headers if n.lower() == name]
    return " ".join(
        f"{a['name'] or ''} {a['email']}" for value in values for a in as_addresses(value)
    )


def search_document(raw: bytes) -> dict[str, str]:
    """Column -> text for the search index (store/search.py COLUMNS)."""
    return document_of(parse(raw))


def document_of(
    root: Part,
    parts: tuple[list[Part], list[Part], list[Part]] | None = None,
    values: dict[str, list[Any]] | None = None,
) -> dict[str, str]:
    """``search_document`` of a message already parsed (the index-time summary
    parses once for both); ``parts`` (decompose's) and ``values`` (mime/views.py
    ``text_values``): this message's, when the caller has them already."""
    subjects = [v for n, v in root.headers if n.lower() == "subject"]
    text, html_parts, attachments = decompose(root) if parts is None else parts
    chunks: list[str] = []
    budget = MAX_BODY_CHARS
    for part in [*(text or html_parts), *attachments]:
        if budget <= 0:
            break
        if not part.type.startswith("text/") or part.sub_parts is not None:
            continue
        kept = values.get(str(part.part_id)) if values is not None else None
        value = kept[0] if kept is not None else str(body_value(part)["value"])
        chunk = html_to_text(value) if part.type == "text/html" else value
        chunks.append(chunk[:budget])
        budget -= len(chunks[-1])
    names = [part.name for part in attachments if part.name]
    return {
        "subject": as_text(subjects[-1]) if subjects else "",
        "sender": _addresses(root, "from"),
        "recipients": _addresses(root, "to"),
        "cc": _addresses(root, "cc"),
        "bcc": _addresses(root, "bcc"),
        "body": "\n".join(chunks),
        "attachments": "\n".join(names),
    }
