"""Reconcile: the only door from disk to index.

Theory of operation. ``reconcile`` compares folders and message files on disk
with what the index believes and returns one ``Change`` that makes the index
match the disk; the caller commits it under the account lock. It is used for
the full scan at start-up, for ``maildir-jmap index``, and (with a set of dirty
folders) by the watcher.

Identity rules (DESIGN, MAILDIR.md §3): a file is keyed by (folder, base name);
a base name that vanished from one folder and appeared in another is a move
(the Email keeps its id, only ``mailboxIds`` changes); a new base name is read
and hashed, and joins an existing Email when the content is already known (a
copy or a re-delivery), else becomes a new Email. A folder that vanished while
a new one appeared holding the same base names was renamed: it keeps its Mailbox
id. Files flagged ``T`` (deleted, not yet expunged) are invisible to JMAP.

Reading and parsing new messages is the only expensive step; with many of them
it runs in a process pool so every core works.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from maildir_jmap.mime.summary import Derived, Summary, Unreadable, email_id, summarize_file
from maildir_jmap.store.index import Index
from maildir_jmap.store.keywords import keywords_of
from maildir_jmap.store.keywords_file import read_keywords
from maildir_jmap.store.maildir import FileName
from maildir_jmap.store.names import Layout
from maildir_jmap.store.records import Change, EmailRecord, MailboxRecord, file_ref
from maildir_jmap.store.roles import role_for
from maildir_jmap.store.scan import DiskFile, Names, ScanResult, relook, scan

log = logging.getLogger(__name__)

Stage = Callable[[str, Derived], None]
"""Takes a new message's derived state (search document, views), by Email id."""
POOL_THRESHOLD = 200  # fewer new files than this are parsed in-process
Progress = Callable[[int, int], None]


@dataclass
class _Work:
    """Mutable copies of the records this reconcile changes."""

    index: Index
    emails: dict[str, EmailRecord] = field(default_factory=dict)

    def email(self, email_id: str) -> EmailRecord:
        rec = self.emails.get(email_id)
        if rec is None:
            original = self.index.emails[email_id]
            rec = dataclasses.replace(original)
            self.emails[email_id] = rec
        return rec


def reconcile(
    index: Index,
    root: Path,
    layout: Layout,
    *,
    directories: Iterable[str] | None = None,
    roles: dict[str, str] | None = None,
    progress: Progress | None = None,
    pool: ProcessPoolExecutor | None = None,
    names: Names | None = None,
    stage: Stage | None = None,
) -> Change:
    """The change that makes ``index`` match the disk (all folders, or only
    ``directories``, plus the folder tree itself; and in other folders, only the
    files ``names`` reports -- what inotify saw -- without listing them). With
    ``stage``, each new message's derived state (search document, views) is made
    from the same parse and handed to it (``Account.rescan``)."""

    def index_name(directory: str, base: str) -> str | None:
        mailbox_id = index.by_directory.get(directory)
        eid = index.email_at(mailbox_id, base) if mailbox_id else None
        rec = index.emails.get(eid) if eid else None
        for ref in rec.files if rec else ():
            if ref[0] == mailbox_id and ref[2] == base:
                return f"{ref[1]}/{ref[2]}{ref[3]}"
        return None

    if directories is None:
        names = None
    result = scan(root, layout, directories if names is None else set(directories or ()),
                  names, index_name)  # fmt: skip
    change = Change()
    mailbox_of = _reconcile_mailboxes(index, result, change, roles)
    work = _Work(index)
    scanned = {mailbox_of[d] for d in result.files if d in mailbox_of and d not in result.partial}
    # Files the index knows in the scanned mailboxes, and in the ones that went.
    known: dict[str, dict[str, tuple[str, str]]] = {m: {} for m in scanned}
    gone_boxes = set(change.mailboxes_gone)
    if scanned or gone_boxes:
        for mailbox_id, on_file in index.by_file.items():
            if mailbox_id in known or mailbox_id in gone_boxes:
                entries = known.setdefault(mailbox_id, {})
                for base, eid in on_file.items():
                    entries[base] = (eid, mailbox_id)
    for partial_directory, reported in result.partial.items():
        partial_box = mailbox_of.get(partial_directory)
        if partial_box is None:
            continue
        entries = known.setdefault(partial_box, {})
        for base in reported:
            found_id = index.email_at(partial_box, base)
            if found_id is not None:
                entries[base] = (found_id, partial_box)
    appeared: list[tuple[str, str, DiskFile]] = []  # (mailbox id, directory, file)
    vanished: dict[str, list[tuple[str, str]]] = {}  # base -> [(mailbox id, email id)]
    for mailbox_id, bases in known.items():
        directory = index.mailboxes[mailbox_id].directory if mailbox_id in index.mailboxes else None
        if mailbox_id in change.mailboxes:
            directory = change.mailboxes[mailbox_id].directory
        on_disk = result.files.get(directory, {}) if directory is not None else {}
        relisted = mailbox_id in scanned
        missing = {b for b in bases if b not in on_disk}
        if missing and directory is not None and directory in result.files:
            on_disk = {**on_disk, **relook(root / directory if directory else root, missing)}
        for base, (eid, _) in bases.items():
            disk = on_disk.get(base)
            if disk is None:
                vanished.setdefault(base, []).append((mailbox_id, eid))
            else:
                _update_file(work, eid, mailbox_id, disk)
                if relisted and disk.parsed.letters:
                    # Keyword letters are read with the folder's dovecot-keywords
                    # as it is now: a letter unknown when the file was last seen
                    # (its line written in between) may name a keyword now.
                    work.email(eid)
    for directory, files in result.files.items():
        if directory not in mailbox_of:
            continue
        mailbox_id = mailbox_of[directory]
        have = known.get(mailbox_id, {})
        for base, disk in files.items():
            if base not in have:
                appeared.append((mailbox_id, directory, disk))
    # Moves: a base name that left one folder and arrived in another.
    unread: list[tuple[str, str, DiskFile]] = []
    for mailbox_id, directory, disk in appeared:
        left = vanished.get(disk.parsed.base)
        if left:
            old_box, eid = left.pop(0)
            rec = work.email(eid)
            base = disk.parsed.base
            kept = [f for f in rec.files if not (f[0] == old_box and f[2] == base)]
            rec.files = (*kept, file_ref(mailbox_id, disk.subdir, disk.name))
        else:
            unread.append((mailbox_id, directory, disk))
    for base, leftovers in vanished.items():
        for mailbox_id, eid in leftovers:
            rec = work.email(eid)
            rec.files = tuple(f for f in rec.files if not (f[0] == mailbox_id and f[2] == base))
    _add_new_files(work, root, unread, change, progress, pool, stage)
    # Keywords are the union over copies, each read with its own folder's letters.
    letter_maps: dict[str, dict[str, str]] = {}
    for rec in work.emails.values():
        if not rec.files:
            continue
        keywords: set[str] = set()
        for mailbox_id, _, base, info in rec.files:
            letters = letter_maps.get(mailbox_id)
            if letters is None:
                letters = letter_maps[mailbox_id] = _letters(
                    index, change, result, root, mailbox_id
                )
            parsed = FileName.parse(base + info)
            keywords |= keywords_of(parsed.flags, parsed.letters, letters)
        rec.keywords = frozenset(keywords)
    for eid, rec in work.emails.items():
        original = index.emails.get(eid)
        if not rec.files:
            if original is not None:
                change.emails_gone.add(eid)
            continue
        if original is None or _differs(original, rec):
            change.emails[eid] = rec
    return change


def _letters(
    index: Index, change: Change, result: ScanResult, root: Path, mailbox_id: str
) -> dict[str, str]:
    box = change.mailboxes.get(mailbox_id) or index.mailboxes.get(mailbox_id)
    if box is None:
        return {}
    if box.directory in result.keywords:
        return result.keywords[box.directory]
    return read_keywords(root / box.directory if box.directory else root)


def _differs(a: EmailRecord, b: EmailRecord) -> bool:
    return sorted(a.files) != sorted(b.files) or a.keywords != b.keywords


def _update_file(work: _Work, eid: str, mailbox_id: str, disk: DiskFile) -> None:
    current = work.emails.get(eid) or work.index.emails[eid]
    base = disk.parsed.base
    if (mailbox_id, disk.subdir, base, disk.name[len(base) :]) in current.files:
        return  # unchanged (equal tuples, without interning a new one)
    new = file_ref(mailbox_id, disk.subdir, disk.name)
    rec = work.email(eid)
    rec.files = tuple(new if f[0] == mailbox_id and f[2] == base else f for f in rec.files)


_pool_broken: list[str] = []
"""Why worker processes could not start here, once seen (then all in-process)."""


def _kept(summary: Summary | Unreadable | None, stage: Stage | None) -> Summary | Unreadable | None:
    """The summary as the index keeps it: its derived state goes to ``stage``."""
    if isinstance(summary, Summary) and summary.derived is not None:
        if stage is not None:
            stage(email_id(summary.digest), summary.derived)
        return dataclasses.replace(summary, derived=None)
    return summary


def _summaries(
    paths: list[str],
    progress: Progress | None,
    pool: ProcessPoolExecutor | None,
    stage: Stage | None = None,
) -> list[Summary | Unreadable | None]:
    total = len(paths)
    if (total < POOL_THRESHOLD and pool is None) or (pool is None and _pool_broken):
        return _summaries_here(paths, progress, stage)
    summarize = functools.partial(summarize_file, derive=stage is not None)
    own_pool = pool is None
    out: list[Summary | Unreadable | None] = []
    try:
        executor = pool or ProcessPoolExecutor(
            max_workers=os.cpu_count() or 1, mp_context=multiprocessing.get_context("forkserver")
        )
        try:
            for done, summary in enumerate(executor.map(summarize, paths, chunksize=64), 1):
                out.append(_kept(summary, stage))
                if progress and (done % 500 == 0 or done == total):
                    progress(done, total)
        finally:
            if own_pool:
                executor.shutdown()
    except (OSError, BrokenProcessPool, NotImplementedError, ImportError) as exc:
        # Issue 17: a service user that may not execute the interpreter made the
        # start fail with a BrokenPipeError. Slower, but it serves.
        if not own_pool:
            raise
        _pool_broken.append(str(exc) or type(exc).__name__)
        log.warning(
            "index worker processes cannot start (%s: %s; is %s executable by this user?): "
            "indexing in one process",
            type(exc).__name__,
            exc,
            sys.executable,
        )
        return _summaries_here(paths, progress, stage)
    return out


def _summaries_here(
    paths: list[str], progress: Progress | None, stage: Stage | None
) -> list[Summary | Unreadable | None]:
    total = len(paths)
    out: list[Summary | Unreadable | None] = []
    for done, path in enumerate(paths, 1):
        out.append(_kept(summarize_file(path, stage is not None), stage))
        if progress and (done % 500 == 0 or done == total):
            progress(done, total)
    return out


def _add_new_files(
    work: _Work,
    root: Path,
    unread: list[tuple[str, str, DiskFile]],
    change: Change,
    progress: Progress | None,
    pool: ProcessPoolExecutor | None,
    stage: Stage | None,
) -> None:
    paths = [
        str((root / directory if directory else root) / disk.subdir / disk.name)
        for _, directory, disk in unread
    ]
    summaries = _summaries(paths, progress, pool, stage)
    index = work.index
    fresh: list[tuple[int, str, str, DiskFile, Summary]] = []
    for (mailbox_id, _, disk), path, summary in zip(unread, paths, summaries, strict=True):
        if summary is None:
            continue  # vanished between listing and reading: the next scan sees it
        if isinstance(summary, Unreadable):
            # Left out of the index, so every later scan tries it again.
            change.unreadable[path] = summary.error
            continue
        try:
            received = int(os.stat(path).st_mtime)
        except FileNotFoundError:
            continue
        fresh.append((received, email_id(summary.digest), mailbox_id, disk, summary))
    # Oldest first, so threads and ids come out the same on every rebuild.
    fresh.sort(key=lambda item: (item[0], item[1]))
    local_threads: dict[str, str] = {}
    inbox = index.inbox()
    inbox_id = inbox.id if inbox else None
    for received, eid, mailbox_id, disk, summary in fresh:
        entry = file_ref(mailbox_id, disk.subdir, disk.name)
        if eid in work.emails or eid in index.emails:
            rec = work.email(eid) if eid in index.emails else work.emails[eid]
            if entry not in rec.files:
                rec.files = (*rec.files, entry)
            continue
        refs = [*summary.in_reply_to, *reversed(summary.references)]
        thread_id = None
        for candidate in [*refs, summary.message_id]:
            if candidate and candidate in local_threads:
                thread_id = local_threads[candidate]
                break
        thread_id = thread_id or index.thread_for(summary.message_id, refs) or "T" + eid[1:]
        for mid in [summary.message_id, *summary.in_reply_to, *summary.references]:
            if mid:
                local_threads.setdefault(mid, thread_id)
        change.message_ids.extend((mid, thread_id) for mid in {*refs, summary.message_id} if mid)
        if disk.subdir == "new" or mailbox_id == inbox_id:
            change.delivered = True  # RFC 8621 §1.5 EmailDelivery: new mail arrived
        work.emails[eid] = EmailRecord.from_summary(
            summary, thread_id, [entry], frozenset(), received
        )


# -- folders ----------------------------------------------------------------------------


def _reconcile_mailboxes(
    index: Index, result: ScanResult, change: Change, roles: dict[str, str] | None
) -> dict[str, str]:
    """Make Mailbox records match the folder tree; returns directory -> mailbox id."""
    on_disk = {f.directory: f for f in result.folders}
    mailbox_of: dict[str, str] = {}
    missing = {d: m for d, m in index.by_directory.items() if d not in on_disk}
    new = [f for f in result.folders if f.directory not in index.by_directory]
    # A vanished folder whose message names all turn up in one new folder was renamed.
    renamed: dict[str, str] = {}  # new directory -> old mailbox id
    if missing and new:
        by_base = {m: set(index.by_file.get(m, ())) for m in missing.values()}
        for folder in new:
            bases = set(result.files.get(folder.directory, {}))
            for old_directory, mailbox_id in list(missing.items()):
                old_bases = by_base.get(mailbox_id)
                if old_bases and old_bases <= bases:
                    renamed[folder.directory] = mailbox_id
                    del missing[old_directory]
                    break
    # Children of a renamed folder moved with it (a Maildir++ RENAME renames each
    # .A.x, an fs RENAME moves the subtree), even when they hold no messages.
    for new_directory, mailbox_id in list(renamed.items()):
        old_levels = index.mailboxes[mailbox_id].levels
        new_levels = on_disk[new_directory].levels
        for old_directory, child_id in list(missing.items()):
            child_levels = index.mailboxes[child_id].levels
            if child_levels[: len(old_levels)] != old_levels:
                continue
            moved = new_levels + child_levels[len(old_levels) :]
            target = next((f for f in new if f.levels == moved), None)
            if target is not None and target.directory not in renamed:
                renamed[target.directory] = child_id
                del missing[old_directory]
    used_roles = {m.role for m in index.mailboxes.values() if m.role}
    for folder in result.folders:
        subscribed = folder.levels in result.subscribed
        known_id = index.by_directory.get(folder.directory) or renamed.get(folder.directory)
        if known_id is None:
            role = "inbox" if folder.is_inbox else role_for(folder.levels, roles)
            if role in used_roles:
                role = None
            if role:
                used_roles.add(role)
            mailbox_id = index.new_mailbox_id()
            change.mailboxes[mailbox_id] = MailboxRecord(
                mailbox_id, folder.directory, folder.levels, role, 0, subscribed, folder.selectable
            )
        else:
            mailbox_id = known_id
            old = index.mailboxes[mailbox_id]
            if (old.directory, old.levels, old.selectable, old.subscribed) != (
                folder.directory,
                folder.levels,
                folder.selectable,
                subscribed,
            ):
                change.mailboxes[mailbox_id] = dataclasses.replace(
                    old,
                    directory=folder.directory,
                    levels=folder.levels,
                    selectable=folder.selectable,
                    subscribed=subscribed,
                )
        mailbox_of[folder.directory] = mailbox_id
    change.mailboxes_gone.update(missing.values())
    return mailbox_of
