"""The ``dovecot-uidlist.lock`` dotlock Dovecot takes around every change to a
folder's files (MAILDIR.md §6), taken and broken by Dovecot's own rules: hard-linked
from a staging file holding ``pid:host``, stale after two minutes or at once
when its process is gone."""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_NAME = "dovecot-uidlist.lock"
LOCK_STALE = 120.0  # Dovecot's own rule: a dotlock older than 2 minutes is stale
LOCK_PID_CHECK = 2.0  # ...and one whose process is gone, once it is this old
LOCK_WAIT = 30.0


class LockTimeout(OSError):
    """Another writer held the folder's dotlock for longer than we wait."""


# -- the dotlock ---------------------------------------------------------------------


def break_dead_locks(folders: Iterable[Path]) -> list[Path]:
    """Remove the dotlocks in ``folders`` whose process is gone (Dovecot's rule,
    without its 2 s grace: at start-up a lock with a pid written is complete).
    Run when an account opens, so locks a SIGKILL left behind (ours or another
    writer's) do not wait for the next writer to find them."""
    broken = []
    for folder in folders:
        lock = folder / LOCK_NAME
        if lock.exists() and lock_owner_dead(lock, grace=0):
            log.warning("removing the lock of a process that is gone: %s", lock)
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
            broken.append(lock)
        # Staging files of locks a killed process of ours was making.
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(folder / "tmp"):
                if entry.name.startswith(LOCK_STAGING) and _pid_gone(entry.name.split(".")[2]):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
    return broken


def _pid_gone(text: str) -> bool:
    if not text.isdigit() or int(text) <= 0 or int(text) == os.getpid():
        return False
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def lock_owner_dead(lock: Path, *, grace: float = LOCK_PID_CHECK) -> bool:
    """Whether ``lock`` names a process of this host that no longer exists: Dovecot's
    dotlock rule (file-dotlock.c), which breaks such a lock at once rather than
    after the stale timeout. The lock holds ``pid:hostname`` (Dovecot's format,
    and ours); a lock younger than ``LOCK_PID_CHECK`` seconds is not checked (its
    writer may not have written its pid yet), nor one of another host or in
    another format. One of our own pid belongs to another thread of ours."""
    try:
        if time.time() - lock.stat().st_mtime < grace:
            return False
        text = lock.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return False
    pid_text, sep, host = text.partition(":")
    if not sep or host != socket.gethostname():
        return False
    if pid_text == str(os.getpid()):
        try:
            stat = lock.stat()
        except FileNotFoundError:
            return False
        return (stat.st_dev, stat.st_ino) not in _HELD  # ours, but no longer held
    return _pid_gone(pid_text)  # EPERM means it exists, as another user


_LOCK_SERIAL = itertools.count()


class _HeldLocks:
    """The (device, inode) of every dotlock this process holds now. A lock file
    with our pid that is not one of them was left behind: a folder renamed while
    we held its lock carries the lock along, and our release unlinks the old
    path. Without this, such a lock (our pid, so "alive") blocked the folder for
    the two-minute stale timeout."""

    def __init__(self) -> None:
        self._held: set[tuple[int, int]] = set()
        self._guard = threading.Lock()

    def add(self, key: tuple[int, int]) -> None:
        with self._guard:
            self._held.add(key)

    def discard(self, key: tuple[int, int]) -> None:
        with self._guard:
            self._held.discard(key)

    def __contains__(self, key: object) -> bool:
        with self._guard:
            return key in self._held


_HELD = _HeldLocks()
LOCK_STAGING = ".mj-lock."  # + "<pid>.<n>" in the folder's tmp/


def _lock_staging(folder: Path) -> Path:
    """A file holding ``pid:hostname`` to hard-link as the lock: the lock then
    appears whole or not at all (Dovecot's own method), so a SIGKILL can never
    leave an empty lock nobody can judge."""
    home = folder / "tmp" if (folder / "tmp").is_dir() else folder
    staging = home / f"{LOCK_STAGING}{os.getpid()}.{next(_LOCK_SERIAL)}"
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, f"{os.getpid()}:{socket.gethostname()}".encode())
    finally:
        os.close(fd)
    return staging


@contextlib.contextmanager
def folder_lock(folder: Path, *, wait: float = LOCK_WAIT) -> Iterator[None]:
    """Hold ``dovecot-uidlist.lock`` in ``folder`` (MAILDIR.md §6): made by hard
    link so it is never empty, waited for while another holder has it, broken when
    its holder is dead (the pid in it, as Dovecot checks) or when older than 2
    minutes. Ours says ``pid:hostname`` like Dovecot's, so a Dovecot breaks it at
    once if we were killed holding it."""
    lock = folder / LOCK_NAME
    deadline = time.monotonic() + wait
    delay = 0.002
    staging = _lock_staging(folder)
    try:
        while True:
            try:
                os.link(staging, lock)
                stat = os.stat(staging)
                held = (stat.st_dev, stat.st_ino)
                _HELD.add(held)
                break
            except FileExistsError:
                pass
            try:
                age = time.time() - lock.stat().st_mtime
            except FileNotFoundError:
                continue
            dead = lock_owner_dead(lock)
            if dead or age > LOCK_STALE:
                reason = "its process is gone" if dead else f"{age:.0f} s old"
                log.warning("breaking stale lock %s (%s)", lock, reason)
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
                continue
            if time.monotonic() > deadline:
                raise LockTimeout(errno.EAGAIN, f"{lock} is held by another writer") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
    try:
        yield
    finally:
        _HELD.discard(held)
        with contextlib.suppress(FileNotFoundError):
            if _same_file(lock, held):
                lock.unlink()


def _same_file(path: Path, key: tuple[int, int]) -> bool:
    """Whether ``path`` is still the lock we made (a lock that a rename carried
    away and another writer's new lock at the same path must not be unlinked)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return False
    return (stat.st_dev, stat.st_ino) == key
