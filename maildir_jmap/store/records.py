"""The records of the index (Mailbox, Email, Thread, tombstones) and ``Change``,
the one way the index changes; with their list forms for the snapshot and the
journal (store/journal.py)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from maildir_jmap.mime import summary as summaries

FileRef = tuple[str, str, str, str]
"""One copy of a message: (mailbox id, "cur" or "new", base name, info such as
":2,FS" or ""). The base name is shared with the ``by_file`` key, and the other
parts are interned: at 100k messages every byte per copy shows."""


def file_ref(mailbox_id: str, subdir: str, name: str) -> FileRef:
    base, sep, info = name.partition(":")
    return (sys.intern(mailbox_id), sys.intern(subdir), base, sys.intern(sep + info))


def file_name(ref: FileRef) -> str:
    return ref[2] + ref[3]


@dataclass(slots=True)
class MailboxRecord:
    id: str
    directory: str  # relative to the Maildir root; "" is INBOX
    levels: tuple[str, ...]  # decoded hierarchy; () is INBOX
    role: str | None = None
    sort_order: int = 0
    subscribed: bool = False
    selectable: bool = True  # False: a parent with no folder of its own
    modseq: int = 0
    created: int = 0
    props_modseq: int = 0  # last change of something other than counts

    def to_list(self) -> list[object]:
        return [
            self.id,
            self.directory,
            list(self.levels),
            self.role,
            self.sort_order,
            self.subscribed,
            self.selectable,
            self.modseq,
            self.created,
            self.props_modseq,
        ]

    @classmethod
    def from_list(cls, row: Sequence[Any]) -> MailboxRecord:
        """From ``to_list``'s form, as msgpack gives it back."""
        rec = cls(*row)
        rec.levels = tuple(rec.levels)
        return rec


@dataclass(slots=True)
class EmailRecord:
    """One message, whatever the number of its files (copies in several folders are
    one Email). ``files`` holds a FileRef per copy.

    Kept small: at 100k messages every field is megabytes (issue 18). The SHA-256
    is kept as its 32 bytes, not 64 hex digits; the Message-ID lives only in the
    index's ``by_message_id``, where threading looks it up; the preview only in
    the kept envelope (store/views.py)."""

    id: str
    sha256: bytes  # of the CRLF form: blobId = "G" + its hex digest
    thread_id: str
    files: list[FileRef]
    keywords: frozenset[str]
    size: int
    received: int
    subject: str = ""
    sender: str = ""  # From, decoded, for sorting and display
    to: str = ""
    sent_at: int | None = None
    has_attachment: bool = False
    preview: str = ""
    """Only in a record read from an index written before previews were kept with
    the envelopes (store/views.py): ``Account.open`` moves it there and empties it."""
    modseq: int = 0
    created: int = 0

    @property
    def digest(self) -> str:
        """The hex SHA-256 (``blobId`` is "G" and this)."""
        return self.sha256.hex()

    @property
    def mailbox_ids(self) -> set[str]:
        return {f[0] for f in self.files}

    @classmethod
    def from_summary(
        cls,
        summary: summaries.Summary,
        thread_id: str,
        files: list[FileRef],
        keywords: frozenset[str],
        received: int,
    ) -> EmailRecord:
        """A new Email's record from its index-time parse (mime/summary)."""
        return cls(
            id=summaries.email_id(summary.digest),
            sha256=bytes.fromhex(summary.digest),
            thread_id=thread_id,
            files=files,
            keywords=keywords,
            size=summary.size,
            received=received,
            subject=summary.subject,
            sender=summary.sender,
            to=summary.to,
            sent_at=summary.sent_at,
            has_attachment=summary.has_attachment,
        )

    def to_list(self) -> list[object]:
        """The journal's and the snapshot's form: the digest as hex, and a place
        for the Message-ID, which earlier records held there (``from_list``)."""
        return [
            self.id,
            self.digest,
            self.thread_id,
            [list(f) for f in self.files],
            sorted(self.keywords),
            self.size,
            self.received,
            self.subject,
            self.sender,
            self.to,
            self.sent_at,
            None,
            self.has_attachment,
            self.preview,
            self.modseq,
            self.created,
        ]

    @classmethod
    def from_list(cls, row: Sequence[Any]) -> EmailRecord:
        """From ``to_list``'s form, as msgpack gives it back. A Message-ID that an
        earlier record holds is left out: the same change remembered it for
        threading (``Change.message_ids``), and the snapshot holds those."""
        (eid, digest, thread_id, files, keywords, size, received, subject, sender, to,
         sent_at, _, has_attachment, preview, modseq, created) = row  # fmt: skip
        return cls(
            eid,
            bytes.fromhex(digest),
            thread_id,
            [file_ref(m, d, b + i) for m, d, b, i in files],
            frozenset(keywords),
            size,
            received,
            subject,
            sender,
            to,
            sent_at,
            has_attachment,
            preview,
            modseq,
            created,
        )


@dataclass(slots=True)
class ThreadRecord:
    id: str
    email_ids: list[str] = field(default_factory=list)
    modseq: int = 0
    created: int = 0


@dataclass
class Change:
    """What one reconcile or one JMAP write does to the index, before modseqs."""

    mailboxes: dict[str, MailboxRecord] = field(default_factory=dict)  # upserts
    mailboxes_gone: set[str] = field(default_factory=set)
    emails: dict[str, EmailRecord] = field(default_factory=dict)  # upserts
    emails_gone: set[str] = field(default_factory=set)
    message_ids: list[tuple[str, str]] = field(default_factory=list)  # Message-ID -> thread
    delivered: bool = False  # new mail arrived (EmailDelivery push, RFC 8621 §1.5)
    unreadable: dict[str, str] = field(default_factory=dict)
    """Message files a reconcile found but could not read: path -> why (not journaled)."""

    def __bool__(self) -> bool:
        return bool(self.mailboxes or self.mailboxes_gone or self.emails or self.emails_gone)


@dataclass(frozen=True)
class Tombstone:
    type: str
    modseq: int
    created: int
