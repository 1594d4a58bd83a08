"""The snapshot read back into an ``Index`` (``Index.to_snapshot`` writes it).

A large index is read from ``Journal.snapshot_entries`` a record at a time, so
that it never holds its whole snapshot unpacked (issue 18). A snapshot that
cannot be read whole raises, and ``store/account.py`` ``load_index`` starts a
fresh index from the Maildir.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from maildir_jmap.store.index import Index
from maildir_jmap.store.records import EmailRecord, MailboxRecord, ThreadRecord, Tombstone

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
    for row in rows:
        rec = EmailRecord.from_list(row)
        thread = index.threads.get(rec.thread_id)
        if thread is None:
            thread = index.threads[rec.thread_id] = ThreadRecord(rec.thread_id)
        index.share(rec)
        index.emails[rec.id] = rec
        for mailbox_id, _, base, _ in rec.files:
            index.by_file[(mailbox_id, base)] = rec.id
        thread.email_ids.append(rec.id)


def _threads(index: Index, rows: Iterable[Sequence[Any]]) -> None:
    for tid, modseq, created in rows:
        thread = index.threads.get(tid)
        if thread is None:
            thread = index.threads[tid] = ThreadRecord(tid)
        thread.modseq, thread.created = modseq, created


def _message_ids(index: Index, pairs: Iterable[Sequence[str]]) -> None:
    threads = index.threads
    for message_id, thread_id in pairs:
        thread = threads.get(thread_id)  # its id, not a copy per Message-ID
        index.by_message_id[message_id] = thread.id if thread is not None else thread_id


def _mailboxes(index: Index, rows: Iterable[Sequence[Any]]) -> None:
    for row in rows:
        box = MailboxRecord.from_list(row)
        index.mailboxes[box.id] = box
        index.by_directory[box.directory] = box.id
