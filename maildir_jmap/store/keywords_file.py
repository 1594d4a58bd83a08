"""A folder's ``dovecot-keywords`` file (MAILDIR.md §1): which letter of a message
file's name stands for which IMAP keyword, read as Dovecot wrote it and extended
under Dovecot's own ``dovecot-keywords.lock``."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from pathlib import Path

from maildir_jmap.durable import write_all
from maildir_jmap.store.dotlock import LOCK_WAIT, LockTimeout, lock_owner_dead
from maildir_jmap.store.maildir import MAX_KEYWORDS, match_owner

log = logging.getLogger(__name__)

KEYWORDS_NAME = "dovecot-keywords"
KEYWORDS_LOCK_STALE = 30.0  # a dovecot-keywords.lock untouched this long is debris (held for ms)


class TooManyKeywords(ValueError):
    """The folder's dovecot-keywords has no free letter left."""


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
        match_owner(staging, folder, directory=False)
        if old_mtime is not None and int(staging.stat().st_mtime) <= old_mtime:
            # Dovecot re-reads the file only when its mtime (in seconds) changed.
            os.utime(staging, (old_mtime + 1, old_mtime + 1))
        os.rename(staging, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        raise
    return updated
