"""Email-level writes: make an Email's files say its Mailboxes and keywords.

Theory of operation. An Email is one message with a file in each folder it is in
(DESIGN: Files). ``place`` turns a wanted (mailboxes, keywords) pair into file
operations, ordered so that a crash at any point leaves at least as many copies as
before: first the keyword names every target folder needs (harmless on their own,
and where a 27th keyword is refused before any file moves), then copies into
added folders, then renames across folders (moves keep the base name, so Dovecot
keeps the UID-less identity and reconcile keeps the Email id), then flag renames,
and last the removal of copies in folders the Email left. ``add`` delivers new
bytes (tmp/ then cur/, the file's mtime as the receivedAt Dovecot reports) and
links the other copies. Nothing here touches the index: callers build a
``Change`` from what these return and commit it while holding the account lock,
so the inotify events our renames cause find the index already right.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from maildir_jmap.mime.summary import Summary, email_id, summarize
from maildir_jmap.store import messages
from maildir_jmap.store.email_record import flat_files
from maildir_jmap.store.index import Index
from maildir_jmap.store.keywords import imap_names_needed, marks_for
from maildir_jmap.store.keywords_file import TooManyKeywords, read_keywords
from maildir_jmap.store.maildir import MAX_KEYWORDS, FileName, deliver, find_file, remove_file
from maildir_jmap.store.records import EmailRecord, FileRef, file_ref

log = logging.getLogger(__name__)


class EmailGone(Exception):
    """None of the Email's files is on disk any more (Dovecot expunged it)."""


def folder_path(root: Path, index: Index, mailbox_id: str) -> Path:
    box = index.mailboxes[mailbox_id]
    return root / box.directory if box.directory else root


def _live_files(root: Path, index: Index, rec: EmailRecord) -> list[tuple[FileRef, Path]]:
    """Each copy's current path (Dovecot may have renamed it since we indexed it)."""
    out = []
    for ref in rec.files:
        mailbox_id, subdir, base, info = ref
        if mailbox_id not in index.mailboxes:
            continue
        folder = folder_path(root, index, mailbox_id)
        path = folder / subdir / (base + info)
        if not path.exists():
            found = find_file(folder, base)
            if found is None:
                continue
            path = found
        out.append((ref, path))
    return out


def check_keyword_room(folders: Iterable[Path], keywords: Iterable[str]) -> None:
    """Raise TooManyKeywords if any folder lacks letters for ``keywords``; nothing is
    written. Checked up front so a refused change moves no file at all."""
    wanted = list(keywords)
    for folder in folders:
        names = read_keywords(folder)
        if len(names) + len(imap_names_needed(wanted, names)) > MAX_KEYWORDS:
            raise TooManyKeywords(f"{folder} has no keyword letter left")


@dataclass(frozen=True)
class KeywordEdit:
    """A keywords change as the client asked for it: a whole new set, or keywords
    added and removed (``keywords/$seen`` patches). Applied to each file's flags as
    they are on disk at the moment of its rename, so a flag an IMAP client set
    since our last reconcile survives a JMAP change to another flag."""

    replace: frozenset[str] | None = None
    add: frozenset[str] = frozenset()
    remove: frozenset[str] = frozenset()

    def apply(self, current: Iterable[str]) -> frozenset[str]:
        if self.replace is not None:
            return self.replace
        return frozenset((set(current) - self.remove) | self.add)

    @property
    def written(self) -> frozenset[str]:
        """Keywords this edit may need letters for."""
        return self.replace if self.replace is not None else self.add


def _carry(
    operation: Callable[[Path, Path, Iterable[str]], Path],
    path: Path,
    target: Path,
    edit: KeywordEdit,
) -> tuple[Path, frozenset[str]]:
    """Copy or move one file with ``edit`` applied to its current keywords; if
    Dovecot renamed it (a flag change) in between, find it again and retry."""
    for _ in range(5):
        keywords = edit.apply(messages.current_keywords(path))
        try:
            return operation(path, target, keywords), keywords
        except FileNotFoundError:
            found = find_file(messages.folder_of(path), FileName.parse(path.name).base)
            if found is None:
                raise
            path = found
    raise FileNotFoundError(path)


def place(
    root: Path,
    index: Index,
    rec: EmailRecord,
    mailbox_ids: set[str],
    edit: KeywordEdit,
) -> EmailRecord:
    """Put ``rec`` in exactly ``mailbox_ids`` with ``edit`` applied to every copy;
    returns the updated record (not committed). Raises EmailGone, TooManyKeywords,
    OSError."""
    live = _live_files(root, index, rec)
    if not live:
        raise EmailGone(rec.id)
    check_keyword_room([folder_path(root, index, m) for m in mailbox_ids], edit.written)
    have = {ref[0] for ref, _ in live}
    added = sorted(mailbox_ids - have)
    removed = [(ref, path) for ref, path in live if ref[0] not in mailbox_ids]
    kept = [(ref, path) for ref, path in live if ref[0] in mailbox_ids]
    files: list[FileRef] = []
    union: set[str] = set()
    source = live[0][1]
    # Copies first: an added folder with no removed copy to move there.
    movers = removed[: len(added)]
    for mailbox_id in added[len(movers) :]:
        folder = folder_path(root, index, mailbox_id)
        target, keywords = _carry(messages.copy, source, folder, edit)
        files.append(file_ref(mailbox_id, target.parent.name, target.name))
        union |= keywords
    for (_, path), mailbox_id in zip(movers, added, strict=False):
        folder = folder_path(root, index, mailbox_id)
        target, keywords = _carry(messages.move, path, folder, edit)
        files.append(file_ref(mailbox_id, target.parent.name, target.name))
        union |= keywords
    for ref, path in kept:
        try:
            path, keywords = messages.edit_keywords(path, edit.apply, edit.written)
        except FileNotFoundError:
            continue  # expunged by Dovecot meanwhile: this copy is gone
        files.append(file_ref(ref[0], path.parent.name, path.name))
        union |= keywords
    for _, path in removed[len(added) :]:
        with contextlib.suppress(FileNotFoundError):
            remove_file(path)
    if not files:
        raise EmailGone(rec.id)
    return replace(rec, flat=flat_files(files), keywords=frozenset(union))


def remove(root: Path, index: Index, rec: EmailRecord) -> None:
    """Expunge every copy of the Email (the files go, nothing else)."""
    for _, path in _live_files(root, index, rec):
        with contextlib.suppress(FileNotFoundError):
            remove_file(path)


@dataclass(frozen=True)
class Added:
    record: EmailRecord
    message_ids: list[tuple[str, str]]  # for Change.message_ids (threading)


def add(
    root: Path,
    index: Index,
    raw: bytes,
    mailbox_ids: Iterable[str],
    keywords: frozenset[str],
    received: float | None = None,
    summary: Summary | None = None,
) -> Added:
    """Write a new message into each of ``mailbox_ids`` (the first by delivery, the
    rest as links to it) and return its record, uncommitted. ``received`` becomes
    the file's mtime, which Dovecot reports as INTERNALDATE."""
    boxes = list(dict.fromkeys(mailbox_ids))
    summary = summary or summarize(raw)
    received = time.time() if received is None else received
    folders = [folder_path(root, index, m) for m in boxes]
    check_keyword_room(folders, keywords)
    first = folders[0]
    names = messages.keyword_names(first, keywords)
    flags, letters = marks_for(keywords, "", "", names)
    path = deliver(first, raw, flags=flags + letters, received=received)
    files = [file_ref(boxes[0], path.parent.name, path.name)]
    written = [path]
    try:
        for mailbox_id, folder in zip(boxes[1:], folders[1:], strict=True):
            copied = messages.copy(path, folder, keywords)
            written.append(copied)
            files.append(file_ref(mailbox_id, copied.parent.name, copied.name))
    except BaseException:
        # A target folder went away (IMAP RENAME/DELETE): the create fails, so the
        # copies this call wrote (and nobody else can know of yet) go again.
        for done in written:
            with contextlib.suppress(OSError):
                remove_file(done)
        raise
    eid = email_id(summary.digest)
    refs = [*summary.in_reply_to, *reversed(summary.references)]
    thread_id = index.thread_for(summary.message_id, refs) or "T" + eid[1:]
    rec = EmailRecord.from_summary(summary, thread_id, files, keywords, int(received))
    ids = [(mid, thread_id) for mid in {*refs, summary.message_id} if mid]
    return Added(rec, ids)
