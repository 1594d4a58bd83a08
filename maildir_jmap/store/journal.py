"""Persistence of the index: a msgpack snapshot plus an append-only journal.

Theory of operation. ``snapshot.msgpack`` holds the whole index as of some
modseq; ``journal.msgpack`` holds, in order, every change set committed after
it. A change set is appended as one framed record (length, CRC-32, msgpack
payload) and fsynced before the write it records is acknowledged. Loading reads
the snapshot and replays the journal; a torn or corrupt record at the end (a
crash mid-append) is cut off, since it was never acknowledged. Compaction
writes a new snapshot atomically (tmp, fsync, rename, fsync dir) and only then
empties the journal; records already in a snapshot are skipped on replay (they
carry their final modseq), so a crash between the two steps loses nothing.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

from maildir_jmap.durable import replace_file, write_all, write_file
from maildir_jmap.store.records import EmailRecord, MailboxRecord

log = logging.getLogger(__name__)

SNAPSHOT = "snapshot.msgpack"
JOURNAL = "journal.msgpack"
_HEADER = struct.Struct(">II")  # payload length, CRC-32 of the payload
MAX_RECORD = 1 << 30


# -- the ops of a change set ---------------------------------------------------------
# A committed change set is a list of ops that, applied in order, turn the index
# before it into the index after it (store/index.py ``stamp`` and ``apply_ops``).
# Each op is stored as a list whose first item is a letter; the letters are the
# on-disk format and never change meaning.


@dataclass(frozen=True, slots=True)
class PutMailbox:
    """A Mailbox created or changed, with its new modseq (M)."""

    record: MailboxRecord


@dataclass(frozen=True, slots=True)
class PutEmail:
    """An Email created or changed, with its new modseq (E)."""

    record: EmailRecord


@dataclass(frozen=True, slots=True)
class Drop:
    """A record destroyed: its tombstone (m, e, t for Mailbox, Email, Thread)."""

    type: str
    id: str
    modseq: int
    created: int


@dataclass(frozen=True, slots=True)
class TouchThread:
    """A Thread created or changed: its members follow from the Emails' (T)."""

    id: str
    modseq: int
    created: int


@dataclass(frozen=True, slots=True)
class TouchCounts:
    """A Mailbox whose counts moved, nothing else (C)."""

    mailbox_id: str
    modseq: int


@dataclass(frozen=True, slots=True)
class RememberThreads:
    """Message-IDs and the Thread each belongs to (R)."""

    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ModseqCounter:
    """The modseq counter after the change set (S)."""

    modseq: int


Op = PutMailbox | PutEmail | Drop | TouchThread | TouchCounts | RememberThreads | ModseqCounter
DROP_LETTERS = {"Mailbox": "m", "Email": "e", "Thread": "t"}
DROP_TYPES = {letter: type_name for type_name, letter in DROP_LETTERS.items()}


def encode_op(op: Op) -> list[object]:
    match op:
        case PutMailbox(record):
            return ["M", *record.to_list()]
        case PutEmail(record):
            return ["E", *record.to_list()]
        case Drop(type_name, record_id, modseq, created):
            return [DROP_LETTERS[type_name], record_id, modseq, created]
        case TouchThread(thread_id, modseq, created):
            return ["T", thread_id, modseq, created]
        case TouchCounts(mailbox_id, modseq):
            return ["C", mailbox_id, modseq]
        case RememberThreads(pairs):
            return ["R", [list(pair) for pair in pairs]]
        case ModseqCounter(modseq):
            return ["S", modseq]


def decode_op(row: Sequence[Any]) -> Op:
    """An op from its stored list (ValueError for one this code does not know)."""
    kind = row[0]
    if kind == "M":
        return PutMailbox(MailboxRecord.from_list(row[1:]))
    if kind == "E":
        return PutEmail(EmailRecord.from_list(row[1:]))
    if kind in DROP_TYPES:
        return Drop(DROP_TYPES[kind], str(row[1]), int(row[2]), int(row[3]))
    if kind == "T":
        return TouchThread(str(row[1]), int(row[2]), int(row[3]))
    if kind == "C":
        return TouchCounts(str(row[1]), int(row[2]))
    if kind == "R":
        return RememberThreads(tuple((str(m), str(t)) for m, t in row[1]))
    if kind == "S":
        return ModseqCounter(int(row[1]))
    raise ValueError(f"unknown journal op {kind!r}")


def encode_change_set(ops: Sequence[Op]) -> dict[str, object]:
    """A journal record: the ops, and the modseq they reach (to skip on replay
    what a snapshot already holds)."""
    last = ops[-1]
    assert isinstance(last, ModseqCounter)
    return {"m": last.modseq, "ops": [encode_op(op) for op in ops]}


def decode_change_set(record: Any) -> tuple[int, list[Op]]:
    return int(record.get("m", 0)), [decode_op(row) for row in record["ops"]]


STREAMED = frozenset({"threads", "emails", "tombstones", "message_ids"})
"""Snapshot entries that grow with the account, read an item at a time."""


def _entries(handle: BinaryIO) -> Iterator[tuple[str, Any]]:
    with handle:
        unpacker = msgpack.Unpacker(
            handle, raw=False, strict_map_key=False, read_size=1 << 20, max_buffer_size=MAX_RECORD
        )
        for _ in range(unpacker.read_map_header()):
            key = unpacker.unpack()
            if key in STREAMED:
                items = (unpacker.unpack() for _ in range(unpacker.read_array_header()))
                yield key, items
                for _ in items:
                    pass  # what the reader left of this entry, so that the next one is next
            else:
                yield key, unpacker.unpack()
        try:
            unpacker.unpack()
        except msgpack.OutOfData:
            return
        raise ValueError("data after the snapshot")


class Journal:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.snapshot_path = directory / SNAPSHOT
        self.journal_path = directory / JOURNAL
        self._fd: int | None = None
        self.records = 0  # records in the journal file since the last snapshot
        self.bytes = 0

    # -- reading ---------------------------------------------------------------------

    def snapshot_entries(self) -> Iterator[tuple[str, Any]] | None:
        """The snapshot's top-level entries in their order, or None if there is no
        snapshot. The lists under ``STREAMED`` keys come as iterators over their
        items, each to be used up before the next entry: a large index is built one
        record at a time and never holds its whole snapshot unpacked, whose freed
        lists were left behind as a third of its resident memory (issue 18, 100k
        Emails: 3.1 KB per message loaded whole, 2.0 KB streamed)."""
        try:
            handle = open(self.snapshot_path, "rb")  # noqa: SIM115 (closed by the generator)
        except FileNotFoundError:
            return None
        return _entries(handle)

    def replay(self) -> Iterator[Any]:
        """Yield every intact record; cut the file after the last one."""
        try:
            data = self.journal_path.read_bytes()
        except FileNotFoundError:
            return
        position = 0
        good = 0
        while position + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, position)
            start = position + _HEADER.size
            payload = data[start : start + length]
            if length > MAX_RECORD or len(payload) < length or zlib.crc32(payload) != crc:
                break
            try:
                record = msgpack.unpackb(payload, raw=False, strict_map_key=False)
            except (ValueError, msgpack.UnpackException):
                break
            position = good = start + length
            self.records += 1
            yield record
        if good < len(data):
            log.warning(
                "journal %s: dropping %d bytes of a torn last record",
                self.journal_path,
                len(data) - good,
            )
            with open(self.journal_path, "r+b") as handle:
                handle.truncate(good)
                os.fsync(handle.fileno())
        self.bytes = good

    # -- writing ---------------------------------------------------------------------

    def append(self, record: Any) -> None:
        """Append one record and fsync it: when this returns, it survives a crash."""
        payload = msgpack.packb(record, use_bin_type=True)
        frame = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        if self._fd is None:
            self._fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        write_all(self._fd, frame)
        os.fsync(self._fd)
        self.records += 1
        self.bytes += len(frame)

    def write_snapshot(self, snapshot: dict[str, Any]) -> None:
        """Replace the snapshot atomically, then start an empty journal."""
        replace_file(self.snapshot_path, msgpack.packb(snapshot, use_bin_type=True))
        self.close()
        write_file(self.journal_path, b"", exclusive=False)
        self.records = 0
        self.bytes = 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
