"""The Maildir on disk, written the way Dovecot expects (shared/MAILDIR.md).

Filenames (§2) with their flags and keyword letters, ownership and modes, atomic
delivery (tmp/ then rename), flag renames, moves and hard-link copies, each under
the folder's dotlock (dotlock.py); the letters' names live in ``dovecot-keywords``
(keywords_file.py). Nothing here knows JMAP ids or the index; ``folders.py``
handles the tree.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from maildir_jmap.durable import fsync_dir, write_file
from maildir_jmap.store.dotlock import folder_lock

log = logging.getLogger(__name__)

SUBDIRS = ("cur", "new", "tmp")
FLAG_ORDER = "DFPRST"  # MAILDIR.md §2: flags in ASCII order, then keyword letters
UIDLIST_NAME = "dovecot-uidlist"
MAX_KEYWORDS = 26  # letters a-z (MAILDIR.md §1, MAILDIR_MAX_KEYWORDS)
_counter = itertools.count()


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


def match_owner(path: Path, model: Path, *, directory: bool) -> None:
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
                match_owner(path / sub, path, directory=True)
        return
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = (staging or parent) / f".mj-{unique_name()}"
    staging.mkdir()
    try:
        match_owner(staging, parent, directory=True)
        for sub in SUBDIRS:
            (staging / sub).mkdir()
            match_owner(staging / sub, staging, directory=True)
        if marker:
            (staging / "maildirfolder").touch()
            match_owner(staging / "maildirfolder", staging, directory=False)
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


# -- message files -----------------------------------------------------------------------


def _write_new(path: Path, data: bytes, model: Path) -> None:
    write_file(path, data)
    match_owner(path, model, directory=False)


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


def rename_with(
    folder: Path,
    base: str,
    marks: Callable[[FileName], tuple[str, str]],
    known: Path | None = None,
) -> Path:
    """Rename a message to the (flags, letters) ``marks`` computes from its current
    name: one rename inside cur/ keeping the base name, under the folder lock
    (MAILDIR.md §6 rule 4), the name read right before the rename so a flag another
    writer just set is seen. A file in new/ moves to cur/ as Dovecot does. If it was
    renamed meanwhile we look it up again; FileNotFoundError means it is gone.

    ``known`` is the name the caller last saw: if it still exists under the lock it
    is the current one, and the folder is not listed (a 45k-message cur/ costs
    ~10 ms to list, per flag change). If Dovecot renames it between that check and
    our rename, the rename fails and the next round lists the folder."""
    for attempt in range(5):
        with folder_lock(folder):
            current = None
            if attempt == 0 and known is not None and os.path.lexists(known):
                current = known
            current = current or find_file(folder, base)
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


def arriving_name(parsed: FileName) -> FileName:
    """The name a message takes when we put it into another folder: a new unique
    base (sizes kept, exact), as APPEND would, never the one it had. Dovecot keeps
    the base on its own COPY and MOVE; a base we carried along could meet Dovecot's
    hard-link COPY of the same message arriving in the same folder (two files, one
    base: Dovecot shows one, or "fixes" a duplicate), or a base the target's
    uidlist still remembers from an earlier stay ("Expunged message reappeared")."""
    sizes = "".join(f",{kind}={value}" for kind, value in _SIZE_FIELD.findall(parsed.base))
    fresh = FileName(unique_name() + sizes, parsed.flags, parsed.letters, parsed.info)
    return replace(fresh, size=parsed.size, vsize=parsed.vsize)


def move_file(source: Path, target_folder: Path, flags: str, letters: str) -> Path:
    """Move a message to another folder: one rename (the same inode) to a new base
    name (``arriving_name``). ``letters`` must already be the target folder's."""
    with folder_lock(source.parent.parent), folder_lock(target_folder):
        parsed = arriving_name(FileName.parse(source.name))
        target = target_folder / "cur" / parsed.with_marks(flags, letters).name()
        os.rename(source, target)
    return target


def copy_file(source: Path, target_folder: Path, flags: str, letters: str) -> Path:
    """Copy a message: a hard link into the target's tmp/ then a rename into cur/
    under a new base name (``arriving_name``); a byte copy where links fail."""
    staging = target_folder / "tmp" / unique_name()
    try:
        os.link(source, staging)
    except OSError:
        _write_new(staging, source.read_bytes(), target_folder / "tmp")
        stat = source.stat()
        os.utime(staging, (stat.st_atime, stat.st_mtime))
    try:
        with folder_lock(target_folder):
            parsed = arriving_name(FileName.parse(source.name))
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
