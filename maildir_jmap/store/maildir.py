"""The Maildir on disk, written the way Dovecot expects (shared/MAILDIR.md).

Filenames (§2), flags and keyword letters, per-folder ``dovecot-keywords`` (§1),
the ``dovecot-uidlist.lock`` dotlock Dovecot takes around every rename (§6),
atomic delivery (tmp/ then rename), flag renames, moves and hard-link copies.
Nothing here knows JMAP ids or the index; ``folders.py`` handles the tree.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from maildir_jmap.durable import fsync_dir, write_all, write_file

log = logging.getLogger(__name__)

SUBDIRS = ("cur", "new", "tmp")
FLAG_ORDER = "DFPRST"  # MAILDIR.md §2: flags in ASCII order, then keyword letters
LOCK_NAME = "dovecot-uidlist.lock"
UIDLIST_NAME = "dovecot-uidlist"
KEYWORDS_NAME = "dovecot-keywords"
LOCK_STALE = 120.0  # Dovecot's own rule: a dotlock older than 2 minutes is stale
LOCK_PID_CHECK = 2.0  # ...and one whose process is gone, once it is this old
LOCK_WAIT = 30.0
KEYWORDS_LOCK_STALE = 30.0  # a dovecot-keywords.lock untouched this long is debris (held for ms)
MAX_KEYWORDS = 26  # letters a-z (MAILDIR.md §1, MAILDIR_MAX_KEYWORDS)
_counter = itertools.count()


class LockTimeout(OSError):
    """Another writer held the folder's dotlock for longer than we wait."""


class TooManyKeywords(ValueError):
    """The folder's dovecot-keywords has no free letter left."""


# -- filenames -----------------------------------------------------------------------

_SIZE_FIELD = re.compile(r",([SW])=(\d+)")


@dataclass(frozen=True)
class FileName:
    """``<unique>[,S=..][,W=..][:2,<flags>]`` (MAILDIR.md §2)."""

    base: str
    flags: str = ""  # uppercase letters, including ones we do not interpret
    letters: str = ""  # keyword letters a-z
    info: bool = False  # had an info part (``:2,``)
    size: int | None = None  # S=
    vsize: int | None = None  # W=

    @classmethod
    def parse(cls, name: str) -> FileName:
        base, sep, info = name.partition(":")
        size = vsize = None
        if "," in base:
            for kind, value in _SIZE_FIELD.findall(base):
                if kind == "S":
                    size = int(value)
                else:
                    vsize = int(value)
        if sep and info.startswith("2,"):
            marks = info[2:]
            if not marks or marks.isupper():  # flags only: the common case, made cheap
                return cls(base, marks, "", True, size, vsize)
            flags = "".join(c for c in marks if not c.islower())
            letters = "".join(c for c in marks if "a" <= c <= "z")
            return cls(base, flags, letters, True, size, vsize)
        # No info, or an info form we do not know (":1,..."): keep the base only.
        return cls(base, "", "", bool(sep), size, vsize)

    def name(self) -> str:
        """The filename, flags and letters sorted (DFPRST then a-z), unknown kept."""
        if not self.info and not self.flags and not self.letters:
            return self.base
        flags = "".join(sorted(set(self.flags)))
        letters = "".join(sorted(set(self.letters)))
        return f"{self.base}:2,{flags}{letters}"

    def with_marks(self, flags: str, letters: str) -> FileName:
        return FileName(self.base, flags, letters, True, self.size, self.vsize)


def unique_name() -> str:
    """``<sec>.M<usec>P<pid>Q<n>.<host>``: Dovecot's shape (sorts by time, which is
    the order Dovecot assigns UIDs in), with a per-process counter."""
    now = time.time()
    sec = int(now)
    usec = int((now - sec) * 1_000_000)
    host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
    return f"{sec}.M{usec}P{os.getpid()}Q{next(_counter)}.{host}"


def to_lf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


def crlf_size(lf_bytes: bytes) -> int:
    """RFC822.SIZE of an LF-stored message: every LF counts as CRLF (MAILDIR.md §2 W=)."""
    return len(lf_bytes) + lf_bytes.count(b"\n")


# -- ownership and modes (MAILDIR.md §6 rule 1, "What this means for us" §7) --------


def _match_owner(path: Path, model: Path, *, directory: bool) -> None:
    """New files get the mode pattern of their folder (0644 under 0755, 0600 under
    0700), and when we run as root also its owner and group, or Dovecot (never
    root) cannot rename them."""
    st = model.stat()
    mode = (st.st_mode & 0o777) if directory else (st.st_mode & 0o666)
    os.chmod(path, mode)
    if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, 0):
        os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)


def make_folder(path: Path, *, marker: bool, staging: Path | None = None) -> None:
    """cur/new/tmp (and Maildir++'s ``maildirfolder``) under ``path``; existing
    pieces are left alone. A new folder is built in ``staging`` (the root's tmp/,
    which Dovecot never lists as a folder) and renamed into place (MAILDIR.md §9),
    so Dovecot never sees half of one."""
    if path.is_dir():
        for sub in SUBDIRS:
            if not (path / sub).is_dir():
                (path / sub).mkdir()
                _match_owner(path / sub, path, directory=True)
        return
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = (staging or parent) / f".mj-{unique_name()}"
    staging.mkdir()
    try:
        _match_owner(staging, parent, directory=True)
        for sub in SUBDIRS:
            (staging / sub).mkdir()
            _match_owner(staging / sub, staging, directory=True)
        if marker:
            (staging / "maildirfolder").touch()
            _match_owner(staging / "maildirfolder", staging, directory=False)
        os.rename(staging, path)
    except BaseException:
        for sub in SUBDIRS:
            with contextlib.suppress(OSError):
                (staging / sub).rmdir()
        with contextlib.suppress(OSError):
            (staging / "maildirfolder").unlink()
        with contextlib.suppress(OSError):
            staging.rmdir()
        raise
    fsync_dir(parent)


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


# -- dovecot-keywords ------------------------------------------------------------------


def read_keywords(folder: Path) -> dict[str, str]:
    """letter -> IMAP keyword name from the folder's ``dovecot-keywords``."""
    try:
        text = (folder / KEYWORDS_NAME).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return {}
    names: dict[str, str] = {}
    for line in text.splitlines():
        index, _, name = line.partition(" ")
        if index.isdigit() and int(index) < MAX_KEYWORDS and name:
            names[chr(ord("a") + int(index))] = name
    return names


def add_keywords(folder: Path, wanted: list[str]) -> dict[str, str]:
    """Make sure each IMAP keyword in ``wanted`` has a letter in the folder; returns
    the whole letter -> name map. Caller holds ``folder_lock``. MAILDIR.md "What this
    means for us" §5: re-read under the lock, reuse a name whatever its case, append
    at the next free index, replace via ``dovecot-keywords.lock`` + rename, mtime
    strictly greater than before; a 27th keyword raises TooManyKeywords.
    ``dovecot-keywords.lock`` is Dovecot's own dotlock for that file (it may hold
    it while it syncs): while it exists we wait, then read the file afresh."""
    staging = folder / (KEYWORDS_NAME + ".lock")
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            return _add_keywords(folder, wanted, staging)
        except FileExistsError:
            try:
                age = time.time() - staging.stat().st_mtime
            except FileNotFoundError:
                continue
            if age > KEYWORDS_LOCK_STALE or lock_owner_dead(staging):
                log.warning("breaking stale lock %s", staging)
                with contextlib.suppress(FileNotFoundError):
                    staging.unlink()
                continue
            if time.monotonic() > deadline:
                raise LockTimeout(errno.EAGAIN, f"{staging} is held by another writer") from None
            time.sleep(0.01)


def _missing(current: dict[str, str], wanted: list[str]) -> list[str]:
    known = {name.lower() for name in current.values()}
    return [k for k in dict.fromkeys(wanted) if k.lower() not in known]


def _add_keywords(folder: Path, wanted: list[str], staging: Path) -> dict[str, str]:
    current = read_keywords(folder)
    if not _missing(current, wanted):
        return current
    # The lock first, then the file read again: read before the lock, Dovecot could
    # install its own new file in between and ours would drop what it added.
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # EEXIST: Dovecot has it
    try:
        try:
            current = read_keywords(folder)
            missing = _missing(current, wanted)
            free = [
                chr(ord("a") + i) for i in range(MAX_KEYWORDS) if chr(ord("a") + i) not in current
            ]
            if len(missing) > len(free):
                raise TooManyKeywords(f"{folder} has no letter left for {', '.join(missing)}")
            updated = dict(current)
            for name, letter in zip(missing, free, strict=False):
                updated[letter] = name
            body = "".join(
                f"{ord(letter) - ord('a')} {name}\n" for letter, name in sorted(updated.items())
            )
            write_all(fd, body.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        if not missing:  # Dovecot added them meanwhile
            staging.unlink()
            return current
        target = folder / KEYWORDS_NAME
        try:
            old_mtime: int | None = int(target.stat().st_mtime)
        except FileNotFoundError:
            old_mtime = None
        _match_owner(staging, folder, directory=False)
        if old_mtime is not None and int(staging.stat().st_mtime) <= old_mtime:
            # Dovecot re-reads the file only when its mtime (in seconds) changed.
            os.utime(staging, (old_mtime + 1, old_mtime + 1))
        os.rename(staging, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        raise
    return updated


# -- message files -----------------------------------------------------------------------


def _write_new(path: Path, data: bytes, model: Path) -> None:
    write_file(path, data)
    _match_owner(path, model, directory=False)


def deliver(
    folder: Path,
    raw: bytes,
    *,
    flags: str = "",
    received: float | None = None,
    seen: bool = True,
) -> Path:
    """Write ``raw`` into ``folder`` atomically and return the final path.

    MAILDIR.md "What this means for us" §3: tmp/ with O_EXCL, write, fsync, set the
    mtime (Dovecot's INTERNALDATE), rename into cur/ with exact ``,S=`` and ``,W=``
    under the folder lock; or into new/ without info for a plain delivery (``seen``
    False and no flags). ``flags`` may hold keyword letters the caller has already
    made sure exist in the folder's dovecot-keywords.
    """
    body = to_lf(raw)
    name = FileName(f"{unique_name()},S={len(body)},W={crlf_size(body)}")
    tmp = folder / "tmp" / name.base
    _write_new(tmp, body, folder / "tmp")
    try:
        if received is not None:
            os.utime(tmp, (received, received))
        upper = "".join(c for c in flags if not c.islower())
        lower = "".join(c for c in flags if c.islower())
        if upper or lower or seen:
            final = folder / "cur" / name.with_marks(upper, lower).name()
        else:
            final = folder / "new" / name.base
        with folder_lock(folder):
            os.rename(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(final.parent)
    return final


def find_file(folder: Path, base: str) -> Path | None:
    """The current file of ``base`` in ``folder`` (its flags may have changed)."""
    for sub in ("cur", "new"):
        try:
            with os.scandir(folder / sub) as entries:
                for entry in entries:
                    if entry.name == base or entry.name.startswith(base + ":"):
                        return folder / sub / entry.name
        except FileNotFoundError:
            continue
    return None


def rename_marks(folder: Path, base: str, flags: str, letters: str) -> Path:
    """Set a message's flags and keyword letters (see ``rename_with``)."""
    return rename_with(folder, base, lambda _: (flags, letters))


def rename_with(folder: Path, base: str, marks: Callable[[FileName], tuple[str, str]]) -> Path:
    """Rename a message to the (flags, letters) ``marks`` computes from its current
    name: one rename inside cur/ keeping the base name, under the folder lock
    (MAILDIR.md §6 rule 4), the name read right before the rename so a flag another
    writer just set is seen. A file in new/ moves to cur/ as Dovecot does. If it was
    renamed meanwhile we look it up again; FileNotFoundError means it is gone."""
    for _ in range(5):
        with folder_lock(folder):
            current = find_file(folder, base)
            if current is None:
                raise FileNotFoundError(errno.ENOENT, f"{base} is not in {folder}")
            parsed = FileName.parse(current.name)
            target = folder / "cur" / parsed.with_marks(*marks(parsed)).name()
            if target == current:
                return current
            try:
                os.rename(current, target)
            except FileNotFoundError:
                continue
            return target
    raise FileNotFoundError(errno.ENOENT, f"{base} kept moving in {folder}")


def remembers(folder: Path, base: str) -> bool:
    """Whether the folder's ``dovecot-uidlist`` still lists ``base``. Dovecot drops
    a record only when it rewrites the file, so a name that left the folder may
    still be there with its old UID (MAILDIR.md §1, "new records are appended").
    A substring test on the cached bytes: a 45,000-line uidlist costs a millisecond
    per move, not a parse."""
    path = folder / UIDLIST_NAME
    try:
        stat = path.stat()
    except FileNotFoundError:
        return False
    data = _uidlist_bytes(str(path), stat.st_mtime_ns, stat.st_size)
    record = f" :{base}".encode()
    return record + b"\n" in data or data.endswith(record)


@functools.lru_cache(maxsize=8)
def _uidlist_bytes(path: str, _mtime_ns: int, _size: int) -> bytes:
    """The file's bytes for one (mtime, size): a rewrite or an append is a new key."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return b""


def arriving_name(parsed: FileName, target_folder: Path) -> FileName:
    """The name a message takes in ``target_folder``: its own base, unless the
    folder's uidlist still remembers that base from an earlier stay. Dovecot then
    takes the file for an expunged message that came back ("Expunged message
    reappeared", or a duplicate uidlist entry), so it arrives under a new unique
    part instead, as an IMAP COPY of the content would (sizes kept, exact)."""
    if not remembers(target_folder, parsed.base):
        return parsed
    sizes = "".join(f",{kind}={value}" for kind, value in _SIZE_FIELD.findall(parsed.base))
    fresh = FileName(unique_name() + sizes, parsed.flags, parsed.letters, parsed.info)
    return replace(fresh, size=parsed.size, vsize=parsed.vsize)


def move_file(source: Path, target_folder: Path, flags: str, letters: str) -> Path:
    """Move a message to another folder keeping its base name (MAILDIR.md §6 rule 6)
    unless the target still remembers it (``arriving_name``). ``letters`` must
    already be the target folder's letters."""
    with folder_lock(source.parent.parent), folder_lock(target_folder):
        parsed = arriving_name(FileName.parse(source.name), target_folder)
        target = target_folder / "cur" / parsed.with_marks(flags, letters).name()
        os.rename(source, target)
    return target


def copy_file(source: Path, target_folder: Path, flags: str, letters: str) -> Path:
    """Copy a message: a hard link into the target's tmp/ then a rename into cur/
    with the same base name (unless the target remembers it), as IMAP COPY does;
    a byte copy where links fail."""
    staging = target_folder / "tmp" / unique_name()
    try:
        os.link(source, staging)
    except OSError:
        _write_new(staging, source.read_bytes(), target_folder / "tmp")
        stat = source.stat()
        os.utime(staging, (stat.st_atime, stat.st_mtime))
    try:
        with folder_lock(target_folder):
            parsed = arriving_name(FileName.parse(source.name), target_folder)
            target = target_folder / "cur" / parsed.with_marks(flags, letters).name()
            os.rename(staging, target)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return target


def remove_file(path: Path) -> None:
    """Expunge one message file (the file goes, nothing else)."""
    folder = path.parent.parent
    with folder_lock(folder):
        path.unlink()
