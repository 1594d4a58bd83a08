"""The records of the index (Mailbox, Email, Thread, tombstones) and ``Change``,
the one way the index changes; with their list forms for the snapshot and the
journal (store/journal.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from maildir_jmap.store.email_record import EmailRecord, FileRef, file_name, file_ref

__all__ = [
    "Change",
    "EmailRecord",
    "FileRef",
    "MailboxRecord",
    "ThreadRecord",
    "Tombstone",
    "file_name",
    "file_ref",
]


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
class ThreadRecord:
    id: str
    email_ids: tuple[str, ...] = ()  # a tuple: 40 bytes less a Thread than a list
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
