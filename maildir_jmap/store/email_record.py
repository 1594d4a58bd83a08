"""An Email's record in the index, kept small: one per message, so at 100k
messages every field is megabytes (issue 18: at most 1 KB resident a message).

What never changes about a message (receivedAt, size, sentAt, hasAttachment, the
SHA-256 past what the id holds, subject, From, To) is packed into one bytes
object (``pack_fields``) and read back through properties: where four ints, a
bool, a bytes and three strings were ten objects, it is one. The copies'
FileRefs are one flat tuple (a single copy's FileRef is that tuple itself).
What changes (files, keywords, modseq) stays attributes. The Message-ID lives
only in the index's ``by_message_id``, the preview only in the kept envelope
(store/views.py).
"""

from __future__ import annotations

import itertools
import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

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


def flat_files(refs: Iterable[FileRef]) -> tuple[str, ...]:
    """``EmailRecord.flat`` of these copies: a single copy's FileRef as it is."""
    refs = tuple(refs)
    return refs[0] if len(refs) == 1 else tuple(itertools.chain.from_iterable(refs))


_HEAD = struct.Struct("<qqqIIB")
"""The head of ``EmailRecord.packed``: receivedAt, size, sentAt (NO_DATE for
none), the UTF-8 lengths of the subject and the sender, and flags. The SHA-256's
rest (REST bytes, or all of it with WHOLE_SHA) follows, then subject, sender, To."""
_RECEIVED = struct.Struct("<q")  # its first field alone: every list view sorts by it
NO_DATE = -(1 << 63)
HAS_ATTACHMENT, WHOLE_SHA = 1, 2
ID_BYTES = 12  # of the SHA-256, in the Email id (mime/summary.py email_id)
REST = 32 - ID_BYTES


def pack_fields(
    received: int,
    size: int,
    sent_at: int | None,
    has_attachment: bool,
    sha_rest: bytes,
    texts: tuple[str, str, str],
) -> bytes:
    """``EmailRecord.packed``; ``sha_rest`` is REST bytes, or 32 for a whole SHA."""
    subject, sender, to = (t.encode("utf-8", "surrogatepass") for t in texts)
    flags = (HAS_ATTACHMENT if has_attachment else 0) | (WHOLE_SHA if len(sha_rest) == 32 else 0)
    date = NO_DATE if sent_at is None else sent_at
    head = _HEAD.pack(received, size, date, len(subject), len(sender), flags)
    return b"".join((head, sha_rest, subject, sender, to))


@dataclass(slots=True)
class EmailRecord:
    """One message, whatever the number of its files (copies in several folders are
    one Email). Made with ``make``, which takes the fields one by one."""

    id: str
    thread_id: str
    flat: tuple[str, ...]
    """Each copy's FileRef, one after another (``files`` gives them as FileRefs)."""
    keywords: frozenset[str]
    packed: bytes  # pack_fields
    modseq: int = 0
    created: int = 0

    @classmethod
    def make(
        cls,
        id: str,
        sha256: bytes,
        thread_id: str,
        files: Iterable[FileRef],
        keywords: frozenset[str],
        size: int,
        received: int,
        subject: str = "",
        sender: str = "",
        to: str = "",
        sent_at: int | None = None,
        has_attachment: bool = False,
        modseq: int = 0,
        created: int = 0,
    ) -> EmailRecord:
        rest = sha256[ID_BYTES:] if id == "M" + sha256[:ID_BYTES].hex() else sha256
        packed = pack_fields(received, size, sent_at, has_attachment, rest, (subject, sender, to))
        if created == modseq:
            created = modseq  # one int object for both, as most records have
        return cls(id, thread_id, flat_files(files), keywords, packed, modseq, created)

    @property
    def files(self) -> tuple[FileRef, ...]:
        flat = self.flat
        if len(flat) == 4:
            return (flat,)  # len() narrows it to a FileRef
        return tuple(cast(FileRef, flat[i : i + 4]) for i in range(0, len(flat), 4))

    @files.setter
    def files(self, refs: Iterable[FileRef]) -> None:
        self.flat = flat_files(refs)

    @property
    def mailbox_ids(self) -> set[str]:
        return set(self.flat[::4])

    @property
    def received(self) -> int:
        return int(_RECEIVED.unpack_from(self.packed)[0])

    @property
    def size(self) -> int:
        return int(_HEAD.unpack_from(self.packed)[1])

    @property
    def sent_at(self) -> int | None:
        date = int(_HEAD.unpack_from(self.packed)[2])
        return None if date == NO_DATE else date

    def head(self) -> tuple[int, int, bool]:
        """(received, size, has_attachment) in one unpacking (an initial sync asks
        for all three of tens of thousands of records)."""
        received, size, _, _, _, flags = _HEAD.unpack_from(self.packed)
        return received, size, bool(flags & HAS_ATTACHMENT)

    @property
    def has_attachment(self) -> bool:
        return bool(self.packed[_HEAD.size - 1] & HAS_ATTACHMENT)

    def _rest_length(self) -> int:
        return 32 if self.packed[_HEAD.size - 1] & WHOLE_SHA else REST

    @property
    def digest(self) -> str:
        """The hex SHA-256 of the CRLF form (``blobId`` is "G" and this)."""
        length = self._rest_length()
        rest = self.packed[_HEAD.size : _HEAD.size + length].hex()
        return rest if length == 32 else self.id[1:] + rest

    def texts(self) -> tuple[str, str, str]:
        """(subject, sender, to) in one unpacking."""
        subject, sender = _HEAD.unpack_from(self.packed)[3:5]
        raw, start = self.packed, _HEAD.size + self._rest_length()
        middle = start + subject
        return (
            raw[start:middle].decode("utf-8", "surrogatepass"),
            raw[middle : middle + sender].decode("utf-8", "surrogatepass"),
            raw[middle + sender :].decode("utf-8", "surrogatepass"),
        )

    @property
    def subject(self) -> str:
        length = _HEAD.unpack_from(self.packed)[3]
        start = _HEAD.size + self._rest_length()
        return self.packed[start : start + length].decode("utf-8", "surrogatepass")

    @property
    def sender(self) -> str:
        return self.texts()[1]

    @property
    def to(self) -> str:
        return self.texts()[2]

    @classmethod
    def from_summary(
        cls,
        summary: summaries.Summary,
        thread_id: str,
        files: Iterable[FileRef],
        keywords: frozenset[str],
        received: int,
    ) -> EmailRecord:
        """A new Email's record from its index-time parse (mime/summary)."""
        return cls.make(
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
        """The journal's and the snapshot's form: the digest as hex, and places for
        the Message-ID and the preview, which earlier records held (``from_list``)."""
        subject, sender, to = self.texts()
        return [
            self.id,
            self.digest,
            self.thread_id,
            [list(f) for f in self.files],
            sorted(self.keywords),
            self.size,
            self.received,
            subject,
            sender,
            to,
            self.sent_at,
            None,
            self.has_attachment,
            "",
            self.modseq,
            self.created,
        ]

    @classmethod
    def from_list(cls, row: Sequence[Any]) -> EmailRecord:
        """From ``to_list``'s form, as msgpack gives it back. A Message-ID that an
        earlier record holds is left out: the same change remembered it for
        threading (``Change.message_ids``), and the snapshot holds those. So is a
        preview (``preview_of`` reads it)."""
        (eid, digest, thread_id, files, keywords, size, received, subject, sender, to,
         sent_at, _, has_attachment, _, modseq, created) = row  # fmt: skip
        return cls.make(
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
            modseq,
            created,
        )


def preview_of(row: Sequence[Any]) -> str:
    """The preview an Email's list form holds: only one written before previews
    were kept with the envelopes (store/views.py) has one."""
    preview = row[13] if len(row) > 13 else ""
    return preview if isinstance(preview, str) else ""
