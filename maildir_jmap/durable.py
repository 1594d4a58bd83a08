"""Writing files so that what we promise survives a crash: whole writes, fsync of
the file and of its directory, and atomic replacement (tmp then rename)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (it may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_file(path: Path, data: bytes, *, mode: int = 0o600, exclusive: bool = True) -> None:
    """Create ``path`` (O_EXCL unless ``exclusive`` is False), write ``data``, fsync."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, mode)
    try:
        write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        if exclusive:  # ours alone: a half-written file (ENOSPC, EIO) must not stay
            os.close(fd)
            fd = -1
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        raise
    finally:
        if fd >= 0:
            os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename or a new name in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Atomically give ``path`` the content ``data`` (tmp, fsync, rename, fsync dir)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write_file(tmp, data, mode=mode, exclusive=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
