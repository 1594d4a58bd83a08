"""Emails as pre-serialized JSON (issue 18: a list view or an initial sync of
thousands of Emails without building and serializing each one again).

When every property an Email/get asks for comes from the index record or the
envelope kept at index time (store/views.py, as JSON text by property), each
Email is spliced from JSON text into one ``Serialized`` value, which the
transport writes out as is (``Context.serialized``). It is the same JSON that
mail/email_view.py ``email_json`` builds: tests/mail/test_email_fragment.py holds
the two side by side.
"""

from __future__ import annotations

from collections.abc import Callable, Set

import orjson

from maildir_jmap.core.types import Serialized, format_epoch
from maildir_jmap.mail.email_view import INDEX_PROPERTIES
from maildir_jmap.mime.views import ENVELOPE, EnvelopeText
from maildir_jmap.store.records import EmailRecord

_dumps = orjson.dumps


def _set(names: Set[str]) -> bytes:
    return _dumps(dict.fromkeys(sorted(names), True))


_INDEX_TEXT: dict[str, Callable[[EmailRecord], bytes]] = {
    "id": lambda rec: _dumps(rec.id),
    "blobId": lambda rec: _dumps("G" + rec.digest),
    "threadId": lambda rec: _dumps(rec.thread_id),
    "mailboxIds": lambda rec: _set(rec.mailbox_ids),
    "keywords": lambda rec: _set(rec.keywords),
    "size": lambda rec: _dumps(rec.size),
    "receivedAt": lambda rec: _dumps(format_epoch(rec.received)),
    "hasAttachment": lambda rec: _dumps(rec.has_attachment),
    "preview": lambda rec: _dumps(rec.preview),
}
assert _INDEX_TEXT.keys() == INDEX_PROPERTIES
_KEY = {prop: _dumps(prop) + b":" for prop in (*INDEX_PROPERTIES, *ENVELOPE)}


class Splicer:
    """Makes the Emails of one Email/get with ``properties`` as JSON text."""

    def __init__(self, properties: frozenset[str]) -> None:
        self.index = [(_KEY[p], _INDEX_TEXT[p]) for p in sorted(properties & INDEX_PROPERTIES)]
        self.envelope = [(_KEY[p], p) for p in ENVELOPE if p in properties]

    @staticmethod
    def serves(properties: frozenset[str]) -> bool:
        """Whether every one of ``properties`` can be spliced."""
        return properties <= _KEY.keys()

    @property
    def needs_envelope(self) -> bool:
        return bool(self.envelope)

    def email(self, rec: EmailRecord, envelope: EnvelopeText | None) -> Serialized:
        """The Email as JSON text; ``envelope`` is its kept one (None only when no
        envelope property is asked for)."""
        parts = [key + text(rec) for key, text in self.index]
        if self.envelope:
            assert envelope is not None
            parts += [key + envelope[prop] for key, prop in self.envelope]
        return orjson.Fragment(b"{" + b",".join(parts) + b"}")
