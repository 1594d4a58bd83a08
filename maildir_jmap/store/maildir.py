"""Writing message files into a Maildir the way Dovecot expects (shared/MAILDIR.md).

So far: unique names, the ``,S=``/``,W=`` size fields, and atomic delivery
(tmp/ then rename, fsync, mtime = received time, ownership like the folder).
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from pathlib import Path

SUBDIRS = ("cur", "new", "tmp")
FLAG_ORDER = "DFPRST"  # MAILDIR.md §2: flags in ASCII order, then keyword letters
_counter = itertools.count()


def unique_name() -> str:
    """``<sec>.M<usec>P<pid>Q<n>.<host>``: Dovecot's shape, with a per-process
    counter so two deliveries in one microsecond never collide."""
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


def ensure_folder(path: Path, *, maildirfolder: bool) -> None:
    """Create cur/new/tmp (and the Maildir++ ``maildirfolder`` marker) if missing."""
    path.mkdir(parents=True, exist_ok=True)
    _own_like(path, path.parent)
    for sub in SUBDIRS:
        (path / sub).mkdir(exist_ok=True)
        _own_like(path / sub, path)
    if maildirfolder:
        marker = path / "maildirfolder"
        if not marker.exists():
            marker.touch()
            _own_like(marker, path)


def deliver(
    folder: Path, raw: bytes, *, flags: str = "", received: float | None = None, seen: bool = True
) -> Path:
    """Write ``raw`` into ``folder`` atomically and return the final path.

    MAILDIR.md "What this means for us" §3: tmp/ with O_EXCL, write, fsync, set
    mtime (= Dovecot's INTERNALDATE), rename into cur/ with exact ``,S=`` and
    ``,W=``; or into new/ without info when ``seen`` is False and no flags are set.
    """
    body = to_lf(raw)
    name = f"{unique_name()},S={len(body)},W={crlf_size(body)}"
    tmp = folder / "tmp" / name
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(body)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    _own_like(tmp, folder)
    if received is not None:
        os.utime(tmp, (received, received))
    ordered = "".join(sorted(set(flags), key=lambda f: (f.islower(), f)))
    cur = ordered or seen
    final = folder / "cur" / f"{name}:2,{ordered}" if cur else folder / "new" / name
    os.rename(tmp, final)
    _fsync_dir(final.parent)
    return final


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _own_like(path: Path, model: Path) -> None:
    """MAILDIR.md §7: as root, new files get the owner and group of their folder."""
    if os.geteuid() != 0:
        return
    st = model.stat()
    if (st.st_uid, st.st_gid) != (0, 0):
        os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
