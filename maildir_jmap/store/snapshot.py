"""The snapshot read back into an ``Index`` (``Index.to_snapshot`` writes it).

A large index is read from ``Journal.snapshot_entries`` a record at a time, so
that it never holds its whole snapshot unpacked (issue 18). A snapshot that
cannot be read whole raises, and ``store/account.py`` ``load_index`` starts a
fresh index from the Maildir.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from maildir_jmap.store.email_record import preview_of
from maildir_jmap.store.index import Index
from maildir_jmap.store.message_ids import MessageIds
from maildir_jmap.store.records import EmailRecord, MailboxRecord, ThreadRecord, Tombstone

LARGE_THREAD = 64  # members past which a Thread's ids are gathered in a list
SNAPSHOT_KEYS = frozenset(
    [
        "v", "epoch", "modseq", "floor", "types",
        "mailboxes", "threads", "emails", "tombstones", "message_ids",
    ]
)  # fmt: skip


def index_of(data: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> Index:
    """From ``to_snapshot``'s form, as msgpack gives it back: a map, or its
    entries in order as ``Journal.snapshot_entries`` streams them: the version
    first, then (as ``to_snapshot`` writes them) Threads before the Emails and
    Message-IDs that share their ids. A snapshot written with Emails first reads
    the same, with its Threads in another order."""
    entries = data.items() if isinstance(data, Mapping) else data
    index = Index()
    seen: set[str] = set()
    for key, value in entries:
        if not seen and (key != "v" or value != 1):
            raise ValueError(f"unknown snapshot version {value if key == 'v' else None!r}")
        seen.add(key)
        match key:
            case "epoch":
                index.epoch = str(value)
            case "modseq":
                index.modseq = int(value)
            case "floor":
                index.floor = int(value)
            case "types":
                index.type_modseq = dict(value)
            case "mailboxes":
                _mailboxes(index, value)
            case "emails":
                _emails(index, value)
            case "threads":
                _threads(index, value)
            case "tombstones":
                for tomb, type_name, modseq, created in value:
                    index.tombstones[tomb] = Tombstone(type_name, modseq, created)
            case "message_ids":
                _message_ids(index, value)
    missing = SNAPSHOT_KEYS - seen
    if missing:
        raise KeyError(f"snapshot without {', '.join(sorted(missing))}")
    for thread in index.threads.values():
        index.sort_thread(thread)
    index.recent.reset(index.modseq)  # a snapshot holds no history
    return index


def _emails(index: Index, rows: Iterable[Sequence[Any]]) -> None:
    members: dict[str, list[str]] = {}  # of large Threads only
    for row in rows:
        rec = EmailRecord.from_list(row)
        preview = preview_of(row)
        if preview:
            index.previews_found[rec.id] = preview
        thread = index.threads.get(rec.thread_id)
        if thread is None:
            thread = index.threads[rec.thread_id] = ThreadRecord(rec.thread_id)
        index.share(rec)
        index.emails[rec.id] = rec
        index.note_files(rec)
        # Most Threads are small: their tuple grows in place of a list per Thread
        # that would be garbage after loading (pools of it left unused: issue 18).
        if len(thread.email_ids) < LARGE_THREAD:
            thread.email_ids = (*thread.email_ids, rec.id)
        else:
            members.setdefault(thread.id, []).append(rec.id)
    for thread_id, email_ids in members.items():
        thread = index.threads[thread_id]
        thread.email_ids = (*thread.email_ids, *email_ids)  # sorted by index_of


def _threads(index: Index, rows: Iterable[Sequence[Any]]) -> None:
    for tid, modseq, created in rows:
        thread = index.threads.get(tid)
        if thread is None:
            thread = index.threads[tid] = ThreadRecord(tid)
        thread.modseq = modseq
        thread.created = modseq if created == modseq else created  # one int for both


def _message_ids(index: Index, pairs: Iterable[Sequence[Any]]) -> None:
    """Keys of Message-IDs (``message_key``), or the ids themselves as snapshots
    written before keys held them."""
    threads = index.threads

    def shared(thread_id: str) -> str:
        thread = threads.get(thread_id)  # its id, not a copy per Message-ID
        return thread.id if thread is not None else thread_id

    index.by_message_id = MessageIds((key, shared(thread_id)) for key, thread_id in pairs)


def _mailboxes(index: Index, rows: Iterable[Sequence[Any]]) -> None:
    for row in rows:
        box = MailboxRecord.from_list(row)
        index.mailboxes[box.id] = box
        index.by_directory[box.directory] = box.id
