"""SearchSnippet/get (RFC 8621 §5): subject and body fragments with the search
terms marked, HTML-escaped."""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Any

from maildir_jmap.core.capabilities import MAIL
from maildir_jmap.core.dispatch import Context, Method
from maildir_jmap.core.errors import MethodError
from maildir_jmap.core.query import validate_filter
from maildir_jmap.core.types import JSONObject, arg_id, arg_id_list, check_known
from maildir_jmap.mail.email_filter import check_condition
from maildir_jmap.mail.records import account_of
from maildir_jmap.mime.text import search_document

PREVIEW_OCTETS = 255  # §5: "MUST NOT be bigger than 255 octets"
_WORD = re.compile(r"\w+", re.UNICODE)


def terms(filter_: Any, keys: tuple[str, ...]) -> list[str]:
    """The words of every ``keys`` condition in a filter tree (NOT branches skipped:
    what must not match is nothing to highlight)."""
    if not isinstance(filter_, dict):
        return []
    if "operator" in filter_:
        if filter_["operator"] == "NOT":
            return []
        return [t for c in filter_["conditions"] for t in terms(c, keys)]
    out: list[str] = []
    for key in keys:
        value = filter_.get(key)
        if isinstance(value, str):
            out += _WORD.findall(value)
    return out


def _fold(text: str) -> str:
    """Case- and diacritic-blind, one output character per input character, so
    offsets found in the folded text are offsets in the original."""
    out = []
    for char in text:
        base = unicodedata.normalize("NFKD", char)[0] if char.isalpha() else char
        folded = base.lower()
        out.append(folded if len(folded) == 1 else char.lower()[:1] or char)
    return "".join(out)


def _spans(text: str, words: list[str]) -> list[tuple[int, int]]:
    """Where words (as prefixes of words in ``text``) occur, merged."""
    folded = _fold(text)
    spans = []
    for word in {_fold(w) for w in words if w}:
        for match in re.finditer(r"\b" + re.escape(word) + r"\w*", folded):
            spans.append(match.span())
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def mark(text: str, spans: list[tuple[int, int]]) -> str:
    out, position = [], 0
    for start, end in spans:
        out.append(html.escape(text[position:start], quote=False))
        out.append("<mark>" + html.escape(text[start:end], quote=False) + "</mark>")
        position = end
    out.append(html.escape(text[position:], quote=False))
    return "".join(out)


def snippet_preview(body: str, words: list[str]) -> str | None:
    """A window of the body around the first match, marked, at most 255 octets."""
    text = " ".join(body.split())
    spans = _spans(text, words)
    if not spans:
        return None
    start = max(0, spans[0][0] - 40)
    for size in range(200, 0, -10):  # shrink until the marked, escaped form fits
        window = text[start : start + size]
        inside = [
            (s - start, min(e, start + size) - start)
            for s, e in spans
            if s >= start and s < start + size
        ]
        rendered = mark(window, inside)
        if len(rendered.encode("utf-8")) <= PREVIEW_OCTETS:
            return rendered
    return None


def searchsnippet_get(ctx: Context, args: JSONObject) -> JSONObject:
    check_known(args, ("accountId", "filter", "emailIds"))
    account_id = arg_id(args, "accountId")
    assert account_id is not None
    account = account_of(ctx.account(account_id, MAIL))
    filter_ = args.get("filter")
    validate_filter(filter_, check_condition)
    ids = arg_id_list(args, "emailIds", nullable=False)
    assert ids is not None
    if len(ids) > ctx.limits.maxObjectsInGet:
        raise MethodError("requestTooLarge", f"at most {ctx.limits.maxObjectsInGet} emailIds")
    subject_words = terms(filter_, ("text", "subject"))
    body_words = terms(filter_, ("text", "body"))
    found: list[JSONObject] = []
    missing: list[str] = []
    for email_id in dict.fromkeys(ids):
        rec = account.index.emails.get(email_id)
        if rec is None:
            missing.append(email_id)
            continue
        spans = _spans(rec.subject, subject_words)
        subject = mark(rec.subject, spans) if spans else None
        preview = None
        if body_words:
            raw = account.read_message(rec)
            if raw is not None:
                preview = snippet_preview(search_document(raw)["body"], body_words)
        found.append({"emailId": email_id, "subject": subject, "preview": preview})
    return {"accountId": account_id, "list": found, "notFound": missing or None}


def methods() -> list[Method]:
    return [Method("SearchSnippet/get", MAIL, searchsnippet_get)]
