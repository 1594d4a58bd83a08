"""Emails as pre-serialized JSON (issue 18: a list view or an initial sync of
thousands of Emails without building and serializing each one again).

When every property an Email/get asks for comes from the index record, the
envelope or the body view kept at index time (store/views.py, as JSON text),
each Email is spliced from JSON text into one ``Serialized`` value, which the
transport writes out as is (``Context.serialized``). Body properties splice with
the default ``bodyProperties`` only, which is what the body view holds; a value
is read back into a string only when ``maxBodyValueBytes`` cuts it. It is the
same JSON that mail/email_view.py ``email_json`` builds:
tests/mail/test_email_fragment.py holds the two side by side.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from maildir_jmap.core.types import Serialized, format_epoch
from maildir_jmap.mail.email_view import BODY, INDEX_PROPERTIES, BodyOptions
from maildir_jmap.mime.parse import truncate
from maildir_jmap.mime.views import (
    AT,
    BODY_LISTS,
    DEFAULT_PART,
    KEPT,
    BodyText,
    EnvelopeText,
    members,
    members_at,
    runs_of,
)
from maildir_jmap.store.records import EmailRecord

_dumps = orjson.dumps


_SETS: dict[object, dict[str, bool]] = {}
"""JSON set objects made (mailboxIds, keywords), by what they are made of: a few
hundred distinct sets serve a whole account."""


def _as_set(key: object, names: Iterable[str]) -> dict[str, bool]:
    made = _SETS.get(key)
    if made is None:
        if len(_SETS) >= 4096:
            _SETS.clear()
        made = _SETS[key] = dict.fromkeys(sorted(names), True)
    return made


def _mailbox_ids(rec: EmailRecord) -> dict[str, bool]:
    flat = rec.flat
    if len(flat) == 4:  # most Emails, one copy: the key is the (interned) mailbox id itself
        return _as_set(flat[0], (flat[0],))
    ids = frozenset(flat[::4])
    return _as_set(ids, ids)


_KEY = {prop: _dumps(prop) + b":" for prop in (*INDEX_PROPERTIES, *KEPT, *BODY)}
_PROBLEM = {False: b',"isEncodingProblem":false', True: b',"isEncodingProblem":true'}
_TRUNCATED = {False: b',"isTruncated":false}', True: b',"isTruncated":true}'}


class Splicer:
    """Makes the Emails of one Email/get with ``properties`` as JSON text."""

    def __init__(self, properties: frozenset[str], body: BodyOptions) -> None:
        self.index = sorted(properties & INDEX_PROPERTIES)
        self.every_index = len(self.index) == len(INDEX_PROPERTIES)
        self.blob_id = "blobId" in properties
        self.envelope = runs_of([AT[p] for p in KEPT if p in properties])
        self.whole_envelope = self.envelope == [(0, len(KEPT) - 1)]
        self.lists = [(_KEY[p], p) for p in BODY_LISTS if p in properties]
        self.values = "bodyValues" in properties
        self.body = body

    @staticmethod
    def serves(properties: frozenset[str], body: BodyOptions) -> bool:
        """Whether every one of ``properties`` can be spliced."""
        if not properties <= _KEY.keys():
            return False
        return not properties & BODY or body.properties == DEFAULT_PART

    @property
    def needs_envelope(self) -> bool:
        return bool(self.envelope)

    @property
    def needs_body(self) -> bool:
        return bool(self.lists) or self.values

    def email(
        self, rec: EmailRecord, envelope: EnvelopeText | None, view: BodyText | None = None
    ) -> Serialized:
        """The Email as JSON text; ``envelope`` and ``view`` are its kept ones (None
        only when no envelope or body property is asked for)."""
        parts = []
        if self.index:
            parts.append(_dumps(self._index_values(rec))[1:-1])
        if self.envelope:
            assert envelope is not None
            if self.whole_envelope:  # an initial sync: the members as they are kept
                parts.append(members(envelope))
            else:
                parts += members_at(envelope, self.envelope)
        if self.needs_body:
            assert view is not None
            parts += [key + view.lists[prop] for key, prop in self.lists]
            if self.values:
                parts.append(_KEY["bodyValues"] + self._values(view))
        return orjson.Fragment(b"{" + b",".join(parts) + b"}")

    def _index_values(self, rec: EmailRecord) -> dict[str, object]:
        """The record's properties asked for as JSON values (mail/email_view.py
        ``email_json`` makes the same), made in one go: a function call apiece
        cost a sixth of an initial sync (issue 18)."""
        received, size, attached = rec.head()
        values = {
            "id": rec.id,
            "threadId": rec.thread_id,
            "mailboxIds": _mailbox_ids(rec),
            "keywords": _as_set(rec.keywords, rec.keywords),
            "size": size,
            "receivedAt": format_epoch(received),
            "hasAttachment": attached,
        }
        if self.blob_id:
            values["blobId"] = "G" + rec.digest
        return values if self.every_index else {prop: values[prop] for prop in self.index}

    def _values(self, view: BodyText) -> bytes:
        """The bodyValues object (RFC 8621 §4.2: fetch*BodyValues, maxBodyValueBytes)."""
        body, out = self.body, []
        for part_id in view.chosen(body.text, body.html, body.every):
            text, problem, is_html, length = view.values[part_id]
            truncated = 0 < body.max_bytes < length
            if truncated:
                text = _dumps(truncate(view.value(part_id), is_html, body.max_bytes)[0])
            out.append(
                _dumps(part_id) + b':{"value":' + text + _PROBLEM[problem] + _TRUNCATED[truncated]
            )
        return b"{" + b",".join(out) + b"}"
