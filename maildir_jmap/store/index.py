"""The in-memory index: records, ids, modseqs and tombstones.

Theory of operation. The index is a cache of the Maildir plus what only it
knows (Mailbox ids, Thread ids, modseqs, tombstones). It changes only through
``Change`` objects built by reconcile or by a JMAP write and applied by
``Index.apply`` (``Account.commit`` journals a change before applying it).
Every record a change touches takes the next value of one per-account modseq
counter, so changes are totally ordered and ``/changes`` can cut anywhere
(DESIGN: Identity and state). A Mailbox whose counts moved because of its
Emails takes a modseq too, remembered as "counts only" so Mailbox/changes can
say ``updatedProperties``. Destroyed records leave tombstones.

State strings are ``<epoch>-<modseq>``; the epoch is random per index, so a
state from another index is never mistaken for ours.

Invariants: a record's ``modseq`` is the last change's; ``created`` the first.
``type_modseq[T]`` is the highest modseq of any T record or tombstone. Applying
the same journaled change twice leaves the index as applying it once.
"""

from __future__ import annotations

import bisect
import secrets
import sys
from collections.abc import Iterable

from maildir_jmap.store.journal import (
    Drop,
    ModseqCounter,
    Op,
    PutEmail,
    PutMailbox,
    RememberThreads,
    TouchCounts,
    TouchThread,
)
from maildir_jmap.store.message_ids import MessageIds
from maildir_jmap.store.recent import RecentChanges
from maildir_jmap.store.records import (
    Change,
    EmailRecord,
    MailboxRecord,
    ThreadRecord,
    Tombstone,
)

MAILBOX, EMAIL, THREAD = "Mailbox", "Email", "Thread"
COUNT_PROPERTIES = ["totalEmails", "unreadEmails", "totalThreads", "unreadThreads"]


class Index:
    def __init__(self, epoch: str | None = None) -> None:
        self.epoch = epoch or secrets.token_hex(4)
        self.modseq = 0
        self.floor = 0  # states older than this cannot be answered
        self.mailboxes: dict[str, MailboxRecord] = {}
        self.emails: dict[str, EmailRecord] = {}
        self.threads: dict[str, ThreadRecord] = {}
        self.tombstones: dict[str, Tombstone] = {}
        self.type_modseq: dict[str, int] = {MAILBOX: 0, EMAIL: 0, THREAD: 0}
        # Derived lookups, rebuilt on load.
        self.by_directory: dict[str, str] = {}
        self.by_file: dict[str, dict[str, str]] = {}  # mailbox id -> base -> email id
        self.by_message_id = MessageIds()  # Message-ID or referenced id -> thread id
        self._keyword_sets: dict[frozenset[str], frozenset[str]] = {}
        self.recent = RecentChanges()  # what changed lately, for change_log
        self.reborn = 0  # the last modseq an Email id came back with after its destroy
        self.previews_found: dict[str, str] = {}
        """Previews in the records of a snapshot written before previews were kept
        with the envelopes (store/snapshot.py): ``Account.open`` moves them there."""

    def share(self, rec: EmailRecord) -> None:
        """Most messages have one of a handful of keyword sets and many share a
        thread: keep one object of each (bench: bytes per message)."""
        rec.keywords = self._keyword_sets.setdefault(rec.keywords, rec.keywords)
        thread = self.threads.get(rec.thread_id)
        rec.thread_id = thread.id if thread is not None else sys.intern(rec.thread_id)

    # -- states ----------------------------------------------------------------------

    def state(self, type_name: str) -> str:
        return f"{self.epoch}-{self.type_modseq.get(type_name, 0)}"

    def parse_state(self, state: str) -> int | None:
        """The modseq a state string of ours stands for, or None."""
        epoch, sep, number = state.partition("-")
        if not sep or epoch != self.epoch or not number.isdigit() or len(number) > 15:
            return None
        value = int(number)
        return value if value <= self.modseq else None

    # -- ids -------------------------------------------------------------------------

    def new_mailbox_id(self) -> str:
        while True:
            candidate = "B" + secrets.token_hex(5)
            if candidate not in self.mailboxes and candidate not in self.tombstones:
                return candidate

    def inbox(self) -> MailboxRecord | None:
        mailbox_id = self.by_directory.get("")
        return self.mailboxes.get(mailbox_id) if mailbox_id else None

    def thread_for(self, message_id: str | None, references: Iterable[str]) -> str | None:
        """RFC 8621 §3: a message joins the thread of one it replies to or refers to,
        or of one that referred to it."""
        for candidate in [*references, message_id]:
            if candidate:
                found = self.by_message_id.get(candidate)
                if found is not None:
                    return found
        return None

    def _first_created(self, record_id: str, modseq: int) -> int:
        """When ``record_id`` first existed: Email and Thread ids come from content,
        so an id can come back after its destroy. It keeps its first creation, so
        that /changes from a state the client saw it in never takes its later
        destroy for a created-then-destroyed record it may leave out (§5.2)."""
        tombstone = self.tombstones.get(record_id)
        return tombstone.created if tombstone is not None else modseq

    # -- applying changes -----------------------------------------------------------------

    def stamp(self, change: Change) -> list[Op]:
        """Give every record of ``change`` its modseq and return the journal ops that,
        applied in order (``apply_ops``), produce the new state. The index itself is
        not changed here."""
        ops: list[Op] = []
        counter = self.modseq
        touched_threads: set[str] = set()
        count_mailboxes: set[str] = set()

        def next_modseq() -> int:
            nonlocal counter
            counter += 1
            return counter

        def unread(rec: EmailRecord) -> bool:
            return "$seen" not in rec.keywords and "$draft" not in rec.keywords

        def thread_mailboxes(thread_id: str) -> set[str]:
            thread = self.threads.get(thread_id)
            out: set[str] = set()
            for email_id in thread.email_ids if thread else ():
                member = self.emails.get(email_id)
                if member is not None:
                    out |= member.mailbox_ids
            return out

        for mailbox_id, box in sorted(change.mailboxes.items()):
            old_box = self.mailboxes.get(mailbox_id)
            box.modseq = box.props_modseq = next_modseq()
            box.created = old_box.created if old_box else box.modseq
            ops.append(PutMailbox(box))
        for mailbox_id in sorted(change.mailboxes_gone):
            gone_box = self.mailboxes.get(mailbox_id)
            if gone_box is not None:
                ops.append(Drop(MAILBOX, mailbox_id, next_modseq(), gone_box.created))
        for email_id, rec in sorted(change.emails.items()):
            old = self.emails.get(email_id)
            rec.modseq = next_modseq()
            rec.created = old.created if old else self._first_created(email_id, rec.modseq)
            ops.append(PutEmail(rec))
            count_mailboxes |= rec.mailbox_ids
            if old is None or old.thread_id != rec.thread_id:
                touched_threads.add(rec.thread_id)
            if old is not None:
                count_mailboxes |= old.mailbox_ids
                if old.thread_id != rec.thread_id:
                    touched_threads.add(old.thread_id)
                if unread(old) != unread(rec) or old.mailbox_ids != rec.mailbox_ids:
                    count_mailboxes |= thread_mailboxes(rec.thread_id)  # unreadThreads
            else:
                count_mailboxes |= thread_mailboxes(rec.thread_id)
        for email_id in sorted(change.emails_gone):
            gone = self.emails.get(email_id)
            if gone is None:
                continue
            ops.append(Drop(EMAIL, email_id, next_modseq(), gone.created))
            touched_threads.add(gone.thread_id)
            count_mailboxes |= gone.mailbox_ids | thread_mailboxes(gone.thread_id)
        joining: dict[str, set[str]] = {}
        for email_id, rec in change.emails.items():
            joining.setdefault(rec.thread_id, set()).add(email_id)
        for thread_id in sorted(touched_threads):
            thread = self.threads.get(thread_id)
            members = set(thread.email_ids) if thread else set()
            members -= change.emails_gone
            # Members that moved to another thread in this change leave this one.
            members = {
                e for e in members if e not in change.emails or e in joining.get(thread_id, ())
            }
            members |= joining.get(thread_id, set())
            modseq = next_modseq()
            if members:
                created = thread.created if thread else self._first_created(thread_id, modseq)
                ops.append(TouchThread(thread_id, modseq, created))
            elif thread is not None:
                ops.append(Drop(THREAD, thread_id, modseq, thread.created))
        # Mailboxes whose counts may have moved (and that were not rewritten above).
        for mailbox_id in sorted(count_mailboxes - set(change.mailboxes) - change.mailboxes_gone):
            if mailbox_id in self.mailboxes:
                ops.append(TouchCounts(mailbox_id, next_modseq()))
        if change.message_ids:
            ops.append(RememberThreads(tuple(change.message_ids)))
        ops.append(ModseqCounter(counter))
        return ops

    def apply_ops(self, ops: Iterable[Op]) -> None:
        """Apply journal ops (from ``stamp`` or from replay); idempotent."""
        for op in ops:
            match op:
                case PutMailbox(record):
                    self._put_mailbox(record)
                case PutEmail(record):
                    self._put_email(record)
                case Drop(type_name, record_id, modseq, created):
                    self._drop(type_name, record_id, modseq, created)
                case TouchThread(thread_id, modseq, created):
                    self._touch_thread(thread_id, modseq, created)
                case TouchCounts(mailbox_id, modseq):
                    mailbox = self.mailboxes.get(mailbox_id)
                    if mailbox is not None:
                        mailbox.modseq = max(mailbox.modseq, modseq)
                        self._bump(MAILBOX, mailbox.modseq, mailbox_id)
                case RememberThreads(pairs):
                    for message_id, thread_id in pairs:
                        self.by_message_id.setdefault(message_id, thread_id)
                case ModseqCounter(modseq):
                    self.modseq = max(self.modseq, modseq)

    def _bump(self, type_name: str, modseq: int, record_id: str) -> None:
        self.recent.note(type_name, modseq, record_id)
        if modseq > self.type_modseq.get(type_name, 0):
            self.type_modseq[type_name] = modseq

    def _put_mailbox(self, rec: MailboxRecord) -> None:
        old = self.mailboxes.get(rec.id)
        if old is not None and self.by_directory.get(old.directory) == rec.id:
            del self.by_directory[old.directory]
        self.mailboxes[rec.id] = rec
        self.by_directory[rec.directory] = rec.id
        self.tombstones.pop(rec.id, None)
        self._bump(MAILBOX, rec.modseq, rec.id)

    def _put_email(self, rec: EmailRecord) -> None:
        self.share(rec)
        old = self.emails.get(rec.id)
        if old is not None:
            self._forget_files(old)
            if old.thread_id != rec.thread_id:
                self._leave_thread(old.thread_id, rec.id)
        if old is None and rec.id in self.tombstones:
            self.reborn = max(self.reborn, rec.modseq)  # its receivedAt may differ now
        self.emails[rec.id] = rec
        self.note_files(rec)
        thread = self.threads.get(rec.thread_id)
        if thread is None:
            thread = self.threads[rec.thread_id] = ThreadRecord(rec.thread_id)
        if rec.id not in thread.email_ids:
            # RFC 8621 §3: emailIds sorted by receivedAt, oldest first.
            emails = self.emails
            members = list(thread.email_ids)
            bisect.insort(
                members, rec.id, key=lambda e: (emails[e].received, e) if e in emails else (0, e)
            )
            thread.email_ids = tuple(members)
        self.tombstones.pop(rec.id, None)
        self._bump(EMAIL, rec.modseq, rec.id)

    def note_files(self, rec: EmailRecord) -> None:
        """Make ``by_file`` find ``rec`` by each of its files. Keyed by Mailbox and
        then base name, the base being the FileRef's own string: a (mailbox, base)
        tuple per file cost 56 bytes a message (issue 18)."""
        for mailbox_id, _, base, _ in rec.files:
            self.by_file.setdefault(mailbox_id, {})[base] = rec.id

    def _forget_files(self, rec: EmailRecord) -> None:
        for mailbox_id, _, base, _ in rec.files:
            names = self.by_file.get(mailbox_id)
            if names is not None and names.pop(base, None) is not None and not names:
                del self.by_file[mailbox_id]

    def email_at(self, mailbox_id: str, base: str) -> str | None:
        """The id of the Email whose copy in ``mailbox_id`` has this base name."""
        names = self.by_file.get(mailbox_id)
        return names.get(base) if names is not None else None

    def sort_thread(self, thread: ThreadRecord) -> None:
        # RFC 8621 §3: emailIds sorted by receivedAt, oldest first.
        thread.email_ids = tuple(
            sorted(
                thread.email_ids,
                key=lambda e: (self.emails[e].received, e) if e in self.emails else (0, e),
            )
        )

    def _leave_thread(self, thread_id: str, email_id: str) -> None:
        thread = self.threads.get(thread_id)
        if thread is not None and email_id in thread.email_ids:
            thread.email_ids = tuple(e for e in thread.email_ids if e != email_id)

    def _touch_thread(self, thread_id: str, modseq: int, created: int) -> None:
        thread = self.threads.get(thread_id)
        if thread is None:
            thread = self.threads[thread_id] = ThreadRecord(thread_id)
        thread.modseq = max(thread.modseq, modseq)
        thread.created = thread.created or created
        self.tombstones.pop(thread_id, None)
        self._bump(THREAD, modseq, thread_id)

    def _drop(self, type_name: str, record_id: str, modseq: int, created: int) -> None:
        if type_name == MAILBOX:
            old = self.mailboxes.pop(record_id, None)
            if old is not None and self.by_directory.get(old.directory) == record_id:
                del self.by_directory[old.directory]
        elif type_name == EMAIL:
            gone = self.emails.pop(record_id, None)
            if gone is not None:
                self._forget_files(gone)
                self._leave_thread(gone.thread_id, record_id)
        else:
            self.threads.pop(record_id, None)
        self.tombstones[record_id] = Tombstone(type_name, modseq, created)
        self._bump(type_name, modseq, record_id)

    # -- /changes ------------------------------------------------------------------------

    def _records_of(
        self, type_name: str
    ) -> dict[str, MailboxRecord] | dict[str, EmailRecord] | dict[str, ThreadRecord]:
        if type_name == MAILBOX:
            return self.mailboxes
        return self.emails if type_name == EMAIL else self.threads

    def change_log(self, type_name: str, since: int) -> list[tuple[int, str, bool, bool]]:
        """(modseq, id, created after since, destroyed) for every record of the type
        changed after ``since`` (the input of core.standard.compute_changes): from
        the ids that changed lately when the log of them reaches back to ``since``,
        the same entries ``scanned_log`` finds, since every modseq a record or
        tombstone holds went through ``_bump``."""
        ids = self.recent.since(type_name, since)
        if ids is None:
            return self.scanned_log(type_name, since)
        found = self._records_of(type_name)
        entries = []
        for record_id in ids:
            rec = found.get(record_id)
            if rec is not None:
                if rec.modseq > since:
                    entries.append((rec.modseq, record_id, rec.created > since, False))
                continue
            gone = self.tombstones.get(record_id)
            if gone is not None and gone.type == type_name and gone.modseq > since:
                entries.append((gone.modseq, record_id, gone.created > since, True))
        return entries

    def scanned_log(self, type_name: str, since: int) -> list[tuple[int, str, bool, bool]]:
        """``change_log`` by a pass over every record and tombstone of the type."""
        records = self._records_of(type_name).values()
        entries = [(r.modseq, r.id, r.created > since, False) for r in records if r.modseq > since]
        entries += [
            (t.modseq, record_id, t.created > since, True)
            for record_id, t in self.tombstones.items()
            if t.type == type_name and t.modseq > since
        ]
        return entries

    def prune_tombstones(self, keep: int) -> int:
        """Forget all but the newest ``keep`` tombstones; states older than the last
        one forgotten then get cannotCalculateChanges (DESIGN: bounded window)."""
        excess = len(self.tombstones) - keep
        if excess <= 0:
            return 0
        oldest = sorted(self.tombstones.items(), key=lambda item: item[1].modseq)[:excess]
        for key, _ in oldest:
            del self.tombstones[key]
        self.floor = max(self.floor, oldest[-1][1].modseq)
        return excess

    # -- snapshot form (read back by store/snapshot.py) -------------------------------

    def to_snapshot(self) -> dict[str, object]:
        return {
            "v": 1,
            "epoch": self.epoch,
            "modseq": self.modseq,
            "floor": self.floor,
            "types": self.type_modseq,
            "mailboxes": [m.to_list() for m in self.mailboxes.values()],
            "threads": [[t.id, t.modseq, t.created] for t in self.threads.values()],
            "emails": [e.to_list() for e in self.emails.values()],
            "tombstones": [[k, t.type, t.modseq, t.created] for k, t in self.tombstones.items()],
            "message_ids": list(self.by_message_id.items()),
        }
