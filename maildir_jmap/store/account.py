"""The Account: one user's Maildir plus the index the server keeps for it.

Theory of operation. ``Account.open`` loads the snapshot, replays the journal
and reconciles with the disk. Every change, whether from reconcile or from a
JMAP write, goes through ``commit``: modseqs are assigned, the change set is
appended to the journal and fsynced, then applied in memory, then listeners
(the push hub, via the app) hear the new states. Callers hold ``lock`` around
reading the disk, building the change and committing it, so a request sees a
consistent account and Dovecot's changes land between requests.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from maildir_jmap.mime.summary import Derived
from maildir_jmap.mime.text import search_document
from maildir_jmap.store import messages
from maildir_jmap.store.blobs import DEFAULT_EXPIRY, BlobStore
from maildir_jmap.store.dotlock import break_dead_locks
from maildir_jmap.store.folders import detect_layout, list_folders
from maildir_jmap.store.index import EMAIL, MAILBOX, THREAD, Index
from maildir_jmap.store.journal import Journal, decode_change_set, encode_change_set
from maildir_jmap.store.names import Layout
from maildir_jmap.store.objects import ObjectStore
from maildir_jmap.store.owner import OwnerLock
from maildir_jmap.store.quota import Quota
from maildir_jmap.store.reconcile import Progress, reconcile
from maildir_jmap.store.records import Change, EmailRecord
from maildir_jmap.store.scan import Names
from maildir_jmap.store.search import SearchIndex
from maildir_jmap.store.sieve import SieveLocation
from maildir_jmap.store.snapshot import index_of
from maildir_jmap.store.views import PackedRow, ViewStore

log = logging.getLogger(__name__)

COMPACT_RECORDS = 2000  # rewrite the snapshot after this many journal records, at least
COMPACT_PER_EMAIL = 5  # ... or one record per this many Emails, whichever is more
COMPACT_BYTES = 64 << 20
MAX_TOMBSTONES = 100_000  # /changes reaches back this many destroyed records
VIEW_BATCH = 500  # views stored per transaction while indexing
EMAIL_DELIVERY = "EmailDelivery"

Listener = Callable[["Account", dict[str, str]], None]


def account_id_for(username: str) -> str:
    """Stable across restarts and rebuilds; derived from the login name."""
    return "A" + hashlib.sha256(username.encode("utf-8")).hexdigest()[:12]


@dataclass
class Account:
    account_id: str
    username: str
    maildir: Path
    state_dir: Path
    blobs: BlobStore
    layout: Layout
    index: Index
    journal: Journal
    roles: dict[str, str] | None = None
    addresses: tuple[str, ...] = ()
    """Addresses the user may send from (the app sets these from its config)."""
    sieve: SieveLocation | None = None
    """Where Pigeonhole reads this user's scripts, if vacation is configured."""
    quota: Quota | None = None
    """Dovecot's quota for this user, if it has one (store/quota.py)."""
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    listeners: list[Listener] = field(default_factory=list, repr=False)
    caches: dict[str, object] = field(default_factory=dict, repr=False)
    """Derived views the datatypes keep (e.g. Mailbox counts), keyed by name."""
    membership_modseq: int | None = None
    """The index modseq of the last commit in this process that added or removed
    Emails (None: unknown, e.g. just started). Search text depends on nothing else."""
    closed: bool = False
    """Set by ``close``: whoever still holds this object must open the account anew."""
    unreadable: dict[str, str] = field(default_factory=dict, repr=False)
    """Message files the last scans could not read (path -> why)."""
    owner: OwnerLock | None = field(default=None, repr=False)
    """This process's hold on the state directory (store/owner.py), until ``close``."""

    @classmethod
    def open(
        cls,
        username: str,
        maildir: Path,
        state_root: Path,
        *,
        layout: Layout | None = None,
        roles: dict[str, str] | None = None,
        scan: bool = True,
        progress: Progress | None = None,
        upload_expiry: float = DEFAULT_EXPIRY,
        escape: str | None = None,
        state_dir: Path | None = None,
    ) -> Account:
        """``state_dir``: the account's state somewhere else than
        ``state_root/accounts/<id>`` (beside the user's mail), linked from there."""
        layout = layout or detect_layout(maildir)
        if escape is not None:
            layout = replace(layout, escape=escape)
        account_id = account_id_for(username)
        if state_dir is None:
            state_dir = state_root / "accounts" / account_id
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if state_dir != state_root / "accounts" / account_id:
            link_state(state_root / "accounts" / account_id, state_dir)
        owner = OwnerLock.take(state_dir)  # before anything here is read or written
        try:
            blobs = BlobStore(state_dir / "uploads", upload_expiry)
            blobs.sweep()
            journal = Journal(state_dir / "index")
            index = load_index(journal)
            account = cls(
                account_id,
                username,
                maildir,
                state_dir,
                blobs,
                layout,
                index,
                journal,
                roles,
                owner=owner,
            )
            account._move_previews()
            folders = list_folders(maildir, account.layout)
            break_dead_locks(maildir / f.directory for f in folders if f.selectable)
            if scan:
                account.rescan(progress=progress, first=not index.emails)
        except BaseException:
            owner.release()
            raise
        return account

    def _move_previews(self) -> None:
        """An index written before previews were kept with the envelopes holds them
        in its records: they move to the kept envelopes (store/views.py), and a
        snapshot without them is written, so that from the next start on the
        records are without them (issue 18: a sixth of their memory)."""
        found = self.index.previews_found
        if not found:
            return
        # Every record of such an index is of then, an empty preview too: a message
        # without text keeps its envelope whole rather than being parsed again.
        moved = self.views.add_previews({e: found.get(e, "") for e in self.index.emails})
        self.index.previews_found = {}
        self.compact()
        log.info("%s: %d previews moved to the kept envelopes", self.username, moved)

    @property
    def is_read_only(self) -> bool:
        """A Maildir we may not write is served read-only (RFC 8620 §2 isReadOnly)."""
        return not os.access(self.maildir, os.W_OK)

    def state(self, type_name: str) -> str:
        return self.index.state(type_name)

    def read_message(self, rec: EmailRecord) -> bytes | None:
        """The Email's content in CRLF form, or None if its files are all gone."""
        return messages.read_message(self.maildir, self.index, rec)

    def read_head(self, rec: EmailRecord) -> bytes | None:
        """Only the header section, CRLF form (cheap for list views)."""
        return messages.read_head(self.maildir, self.index, rec)

    @property
    def search(self) -> SearchIndex:
        """The full-text index, opened (or rebuilt, if deleted) on first use."""
        found = self.caches.get("search")
        if not isinstance(found, SearchIndex):
            found = SearchIndex(self.state_dir / "search.sqlite")
            self.caches["search"] = found
        return found

    @property
    def views(self) -> ViewStore:
        """Each Email's envelope and body view (store/views.py), opened on first use."""
        found = self.caches.get("views")
        if not isinstance(found, ViewStore):
            found = ViewStore(self.state_dir / "views.sqlite")
            self.caches["views"] = found
        return found

    @property
    def objects(self) -> ObjectStore:
        """Identities and EmailSubmissions (store/objects.py), loaded on first use."""
        found = self.caches.get("objects")
        if not isinstance(found, ObjectStore):
            found = ObjectStore.open(self.state_dir)
            self.caches["objects"] = found
        return found

    def commit_objects(self) -> dict[str, str]:
        """Persist the object store's changes and tell listeners. Caller holds ``lock``."""
        changed = self.objects.save()
        if changed:
            self.announce(changed)
        return changed

    def sync_search(self) -> int:
        """Bring the full-text index up to date with the index; returns Emails added."""
        index = self.index

        def document(email_id: str) -> dict[str, str] | None:
            rec = index.emails.get(email_id)
            raw = self.read_message(rec) if rec is not None else None
            return search_document(raw) if raw is not None else None

        with self.lock:
            epoch, modseq = index.epoch, index.modseq
            synced = self.search.synced()
            if synced == (epoch, modseq):
                if self.membership_modseq is None:
                    self.membership_modseq = modseq  # in step: membership known from here
                return 0  # the common case, and it must stay cheap: every search asks
            membership = self.membership_modseq
            if membership is not None and synced[0] == epoch and synced[1] >= membership:
                # Only keywords or mailboxes changed since: the text index is right
                # as it is (measured: re-reading 100k rows cost 0.5 s per flag change).
                self.search.mark_synced(epoch, modseq)
                return 0
            emails = {email_id: rec.received for email_id, rec in index.emails.items()}
        added = self.search.sync(epoch, modseq, emails, document)
        with self.lock:
            if self.membership_modseq is None:
                self.membership_modseq = modseq  # known from here on
        return added

    def rescan(
        self,
        directories: set[str] | None = None,
        progress: Progress | None = None,
        names: Names | None = None,
        first: bool = False,
    ) -> Change:
        """Reconcile with the disk (every folder, or only ``directories`` listed in
        full and the files ``names`` reports elsewhere) and commit. ``first``: the
        first build of an account nobody reads yet (its text is indexed as it is
        parsed, ``SearchIndex.begin_direct``)."""
        with self.lock:
            search, views = self.search, self.views
            search.discard_staged()
            if first:
                search.begin_direct()
            rows: list[PackedRow] = []

            def stage(email_id: str, derived: Derived) -> None:
                # Issue 18: search and views are made with the rest, in the pool.
                # Views are kept at once (an Email's never go stale, and those
                # of one that never lands are dropped at compaction).
                search.stage(email_id, derived.document, derived.received)
                rows.append((email_id, derived.envelope, derived.body))
                if len(rows) >= VIEW_BATCH:
                    views.put_packed(rows)
                    rows.clear()

            try:
                change = reconcile(
                    self.index,
                    self.maildir,
                    self.layout,
                    directories=directories,
                    roles=self.roles,
                    progress=progress,
                    names=names,
                    stage=stage,
                )
                views.put_packed(rows)
                self._note_unreadable(change, directories is None and names is None)
                fresh = [
                    (e, r.received) for e, r in change.emails.items() if e not in self.index.emails
                ]
                self.commit(change)
            except BaseException:
                search.discard_staged()
                raise
            search.add_staged(fresh)
            return change

    def _note_unreadable(self, change: Change, full: bool) -> None:
        """Files that cannot be read are skipped, not fatal (issue 14: one
        root-owned 0600 file stopped sync for the whole account). Each is logged
        once while it stays unreadable, counted in ``unreadable`` (/metrics), and
        tried again by every scan that meets it."""
        for path, why in change.unreadable.items():
            if path not in self.unreadable:
                log.warning("cannot read %s (%s); skipping it until it can be read", path, why)
        if full:
            self.unreadable = dict(change.unreadable)
            return
        for path in list(self.unreadable):
            if path not in change.unreadable and not os.access(path, os.R_OK):
                continue  # still unreadable, in a folder this scan did not look at
            if path not in change.unreadable:
                del self.unreadable[path]  # readable again (indexed now) or gone
        self.unreadable.update(change.unreadable)

    def commit(self, change: Change) -> dict[str, str]:
        """Journal (fsynced) and apply ``change``; returns the new states of the types
        it touched, which listeners also receive. Caller holds ``lock``."""
        if not change:
            return {}
        before = dict(self.index.type_modseq)
        membership = bool(change.emails_gone) or any(
            email_id not in self.index.emails for email_id in change.emails
        )
        ops = self.index.stamp(change)
        self.journal.append(encode_change_set(ops))
        self.index.apply_ops(ops)
        if membership:
            self.membership_modseq = self.index.modseq
        changed = {
            t: self.index.state(t)
            for t in (MAILBOX, EMAIL, THREAD)
            if self.index.type_modseq.get(t) != before.get(t)
        }
        if change.delivered:
            changed[EMAIL_DELIVERY] = self.index.state(EMAIL)
        if self.journal.records >= compact_after(len(self.index.emails)) or (
            self.journal.bytes >= COMPACT_BYTES
        ):
            self.compact()
        self.announce(changed)
        return changed

    def announce(self, changed: dict[str, str]) -> None:
        """Tell listeners (the push hub) the new states of the types in ``changed``."""
        for listener in list(self.listeners):
            try:
                listener(self, changed)
            except Exception:
                log.exception("state listener failed for %s", self.account_id)

    def compact(self, max_tombstones: int = MAX_TOMBSTONES) -> None:
        """Write a snapshot (emptying the journal), forgetting the oldest tombstones
        beyond ``max_tombstones``."""
        with self.lock:
            self.index.prune_tombstones(max_tombstones)
            self.journal.write_snapshot(self.index.to_snapshot())
            self.views.keep_only(self.index.emails)

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.journal.close()
            search = self.caches.pop("search", None)
            if isinstance(search, SearchIndex):
                search.close()
            views = self.caches.pop("views", None)
            if isinstance(views, ViewStore):
                views.close()
            if self.owner is not None:
                self.owner.release()


def compact_after(emails: int) -> int:
    """Journal records that make a snapshot worth writing. A snapshot costs about
    17 µs per Email (1.7 s at 100k, every request of the account waiting), a
    record 37 µs to replay at start-up: at one record per five Emails a 100k
    account compacts every 20,000 writes, not every 2,000, and starts at most
    0.7 s slower (measured on the bench's Xeon, issue 18)."""
    return max(COMPACT_RECORDS, emails // COMPACT_PER_EMAIL)


def link_state(link: Path, target: Path) -> None:
    """Point ``link`` at an account state kept elsewhere, so what scans the state
    root (the outbox at start-up) finds it; a real directory there (state kept here
    before) is left alone and logged, never removed."""
    if link.is_symlink():
        if link.resolve() == target.resolve():
            return
        link.unlink()
    elif link.exists():
        log.warning("%s holds this account's earlier state; it now lives in %s", link, target)
        return
    link.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    link.symlink_to(target, target_is_directory=True)


def load_index(journal: Journal) -> Index:
    """Snapshot + journal replay; an unreadable snapshot starts a fresh index (a new
    epoch, so clients resync) rather than serving a wrong one."""
    index = Index()
    snapshot = journal.snapshot_entries()
    if snapshot is not None:
        try:
            index = index_of(snapshot)
        except Exception:
            log.exception(
                "snapshot in %s is unreadable or invalid; rebuilding the index", journal.directory
            )
            index = Index()
            snapshot = None
    replayed = 0
    for record in journal.replay():
        reaches, ops = decode_change_set(record)
        if snapshot is not None and reaches <= index.modseq:
            continue  # already in the snapshot (crash between snapshot and truncation)
        index.apply_ops(ops)
        replayed += 1
    if snapshot is None and replayed == 0:
        journal.write_snapshot(index.to_snapshot())  # record this index's epoch
    log.debug(
        "index %s: modseq %d, %d journal records replayed",
        journal.directory,
        index.modseq,
        replayed,
    )
    return index
