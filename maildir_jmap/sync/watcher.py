"""Watching a Maildir for changes made by Dovecot (or anyone) and reconciling them.

Theory of operation. A watchdog (inotify) observer reports file events under the
Maildir; ``_Handler`` turns each into a named file (a message file in ``cur/`` or
``new/``: only that file is looked at, by its reported names and the one the
index knows, so a flag change in a 45,000-message folder costs 2 ms, not the
second a folder listing takes), a dirty folder (its ``dovecot-keywords``, or more
than ``MAX_NAMED`` files at once) or marks the folder tree dirty (directories
appearing or going, the ``subscriptions`` file). One worker thread
per watched account waits for the first event, lets the burst settle for a
short debounce, and runs one reconcile for the whole batch under the account
lock, so a move seen as delete+create lands as one update. Our own writes are
already in the index when their events arrive, so reconcile finds nothing to do.
Events Dovecot causes in its own files (``dovecot.index*``, the uidlist) and in
``tmp/`` are ignored. A full rescan runs periodically, and at once when the
kernel's event queue overflowed, so nothing missed stays missed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import warnings
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import ObservedWatch

from maildir_jmap.metrics import RECONCILE_SECONDS, WATCHER_EVENTS
from maildir_jmap.store.account import Account
from maildir_jmap.store.keywords_file import KEYWORDS_NAME, read_keywords
from maildir_jmap.store.scan import Names

log = logging.getLogger(__name__)

DEBOUNCE = 0.03  # seconds of quiet before a batch is reconciled...
FIRST_DEBOUNCE = 0.01  # ...or this, for the first batch after a quiet spell
QUIET_SPELL = 0.05  # seconds without a batch that make the next one a first
"""A lone change (one IMAP STORE after a while) is pushed 20 ms sooner with the
short wait; a stream of changes (a client storing flags one by one, 15 ms apart)
goes on in batches of the long one. Changes further apart than the long wait were
batches of their own already. Measured on 10k messages: 200 renames 15 ms apart
took 200 reconciles (0.25 s) with 10 ms throughout, 12 with 30 ms, 13 with this."""
MAX_DELAY = 0.25  # ...but a steady stream of events waits no longer than this
TREE = "\0tree"  # marker: the folder tree itself changed
MAX_NAMED = 2000  # more files named in one folder than this: list the folder instead


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        if event.is_directory and event.event_type in ("modified", "closed"):
            # watchdog reports a directory as modified whenever an entry in it changes
            # (Dovecot's index files, a flag rename): the entry's own event says what
            # changed. Taken as "the tree changed", it cost a full rescan each time.
            return
        WATCHER_EVENTS.inc()
        paths = [event.src_path, getattr(event, "dest_path", "")]
        for raw in paths:
            if raw:
                path = raw.decode() if isinstance(raw, bytes) else raw
                self.watcher.note(Path(path), event.is_directory)
        if event.is_directory and event.event_type == "moved":
            src, dest = (str(p.decode() if isinstance(p, bytes) else p) for p in paths)
            if "tmp" in Path(src).parts:
                self.watcher.follow_staged(Path(dest))


class Watcher:
    """Keeps one account in step with its Maildir."""

    def __init__(self, account: Account, *, rescan_every: float = 300.0) -> None:
        self.account = account
        self.root = account.maildir
        self.rescan_every = rescan_every
        self._dirty: set[str] = set()  # folders to list in full
        self._names: Names = {}  # elsewhere: only the files inotify named
        self._letters: dict[str, dict[str, str]] = {}  # folder -> its dovecot-keywords
        self._full = False
        self._wake = threading.Condition()
        self._stop = False
        self._last_batch = 0.0  # monotonic time the last batch was taken
        self._observer = Observer()
        self._thread = threading.Thread(
            target=self._run, name=f"watch-{account.account_id}", daemon=True
        )
        self._followed: dict[str, ObservedWatch] = {}  # folder -> its own watch
        self._overflow = _OverflowWatch(self)
        self.batches = 0  # reconciles run (for tests and metrics)
        self.events = 0

    # -- events ----------------------------------------------------------------------

    def folder_of(self, path: Path, is_directory: bool) -> str | None:
        """The folder directory an event concerns, TREE, or None to ignore it."""
        try:
            parts = path.relative_to(self.root).parts
        except ValueError:
            return None
        if not parts:
            return TREE
        name = parts[-1]
        if name == "subscriptions" and len(parts) == 1:
            return TREE
        if name == KEYWORDS_NAME:
            folder = "/".join(parts[:-1])
            return folder if self._keywords_changed(folder) else None
        if len(parts) >= 2 and parts[-2] in ("cur", "new"):
            folder_parts = parts[:-2]
        elif is_directory and name in ("cur", "new"):
            folder_parts = parts[:-1]
        elif is_directory and "tmp" not in parts:
            return TREE  # a folder directory was created, renamed or removed
        else:
            return None  # tmp/, dovecot.index*, dovecot-uidlist and the like
        if "tmp" in folder_parts:
            return None
        return "/".join(folder_parts)

    def _keywords_changed(self, folder: str) -> bool:
        """Whether a folder's dovecot-keywords now says something new. Dovecot
        rewrites the file when it syncs a mailbox even if no letter changed; only a
        changed mapping needs the folder listed again (its letters mean other
        keywords now), which at 45,000 messages costs a second."""
        names = read_keywords(self.root / folder if folder else self.root)
        if self._letters.get(folder) == names:
            return False
        self._letters[folder] = names
        return True

    def note(self, path: Path, is_directory: bool) -> None:
        folder = self.folder_of(path, is_directory)
        if folder is None:
            return
        named = not is_directory and path.parent.name in ("cur", "new")
        with self._wake:
            self.events += 1
            if folder == TREE:
                self._full = True
            elif named and folder not in self._dirty:
                # A message file: look at it alone, not at the folder's 50,000 others.
                reported = self._names.setdefault(folder, set())
                reported.add((path.parent.name, path.name))
                if len(reported) > MAX_NAMED:
                    self._dirty.add(folder)
                    del self._names[folder]
            else:
                self._dirty.add(folder)
                self._names.pop(folder, None)
            self._wake.notify()

    def follow_staged(self, folder: Path) -> None:
        """Watch a folder that was built in a tmp/ and renamed into place (ours,
        MAILDIR.md §9). The recursive watch loses that race: it may add its watches
        for the staging directory after the rename, or keep the staging path for
        them, so events in the folder's cur/ and new/ came under tmp/ (ignored) or
        not at all. A watch of its own on the folder, and one listing of it for
        anything that arrived before the watch, close the gap."""
        try:
            relative = folder.relative_to(self.root)
        except ValueError:
            return
        if not (folder / "cur").is_dir() or str(folder) in self._followed:
            return
        try:
            self._followed[str(folder)] = self._observer.schedule(
                _Handler(self), str(folder), recursive=True
            )
        except FileNotFoundError:
            return  # renamed or deleted again at once: the tree events cover it
        except OSError as exc:  # out of inotify instances: the rescan still finds it
            log.warning("cannot watch %s: %s", folder, exc)
        with self._wake:
            self._dirty.add(str(relative))
            self._wake.notify()

    def _forget_gone_folders(self) -> None:
        """Drop the own watches of followed folders that no longer exist."""
        for path, watch in list(self._followed.items()):
            if not Path(path, "cur").is_dir():
                del self._followed[path]
                with contextlib.suppress(KeyError, OSError):
                    self._observer.unschedule(watch)

    def request_full_rescan(self) -> None:
        with self._wake:
            self._full = True
            self._wake.notify()

    # -- the worker ------------------------------------------------------------------------

    def start(self) -> Watcher:
        for box in list(self.account.index.mailboxes.values()):
            if box.selectable:
                self._keywords_changed(box.directory)  # what each folder's letters say now
        self._observer.schedule(_Handler(self), str(self.root), recursive=True)
        _quiet_staging_races()
        self._overflow.attach()
        self._observer.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._overflow.detach()
        with self._wake:
            self._stop = True
            self._wake.notify()
        if self._observer.is_alive():
            self._observer.stop()
            self._observer.join(5)
        if self._thread.is_alive():
            self._thread.join(5)

    def _take_batch(self) -> tuple[set[str], Names, bool] | None:
        """Wait for events, then for the burst to settle; None when stopping."""
        with self._wake:
            deadline = time.monotonic() + self.rescan_every
            while not (self._dirty or self._names or self._full or self._stop):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._full = True  # the periodic full rescan
                    break
                self._wake.wait(remaining)
            if self._stop:
                return None
            first = time.monotonic()
            quiet = FIRST_DEBOUNCE if first - self._last_batch > QUIET_SPELL else DEBOUNCE
            seen = self.events
            while time.monotonic() - first < MAX_DELAY:
                self._wake.wait(quiet)
                if self.events == seen or self._stop:
                    break
                seen = self.events
            batch, names, full = self._dirty, self._names, self._full
            self._dirty, self._names, self._full = set(), {}, False
            self._last_batch = time.monotonic()
            return batch, names, full

    def _run(self) -> None:
        while True:
            taken = self._take_batch()
            if taken is None:
                return
            dirty, names, full = taken
            try:
                # A partial reconcile still lists the tree; "full" scans every folder.
                started = time.monotonic()
                if full:
                    self.account.rescan(None)
                    self._forget_gone_folders()
                else:
                    self.account.rescan(dirty, names=names)
                scope = "full" if full else "targeted"
                RECONCILE_SECONDS.labels(scope).observe(time.monotonic() - started)
                self.batches += 1
                if full:
                    self.account.blobs.sweep()  # uploads past their expiry
                self.account.sync_search()  # keep full-text search warm, off the request path
            except Exception:
                log.exception("reconcile of %s failed; retrying with a full rescan", self.root)
                time.sleep(1)
                self.request_full_rescan()


class _OverflowWatch(logging.Handler):
    """watchdog recovers from an inotify queue overflow by itself but tells only
    its log; events were lost, so the watcher rescans everything at once. One per
    watcher, on watchdog's loggers while the watcher runs."""

    LOGGERS = ("watchdog.observers.inotify_c", "watchdog.observers.inotify")

    def __init__(self, watcher: Watcher) -> None:
        super().__init__(logging.WARNING)
        self.watcher = watcher

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.watcher.request_full_rescan()

    def attach(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)

    def detach(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeHandler(self)


def _quiet_staging_races() -> None:
    """watchdog warns when it races itself adding recursive watches for a directory
    tree made and renamed within microseconds (our folder staging in tmp/): the
    watch it keeps is the right one, so the warning is only noise."""
    message = "Callback with id"
    if not any(f[1] is not None and f[1].pattern == message for f in warnings.filters):
        warnings.filterwarnings("ignore", message=message, category=RuntimeWarning)
