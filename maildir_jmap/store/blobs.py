"""Uploaded blobs (RFC 8620 §6.1), kept in the account's state directory.

A blob's id is ``G`` + the SHA-256 of its bytes: the same scheme as an Email's
raw-message blobId (DESIGN: Identity and state), so uploading a message and
importing it name the same bytes the same way. Files are written to a temporary
name, fsynced and renamed, so a half-written upload never has an id. Uploads
older than the expiry (24 h by default; §6 requires at least 1 h) are swept; a
re-upload of the same bytes resets that clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from maildir_jmap.durable import write_all, write_file

log = logging.getLogger(__name__)

BLOB_ID = re.compile(r"G[0-9a-f]{64}")
DEFAULT_EXPIRY = 24 * 3600.0


class BlobTooLarge(Exception):
    """The upload exceeded the size limit; nothing was kept."""


@dataclass(frozen=True)
class Blob:
    blob_id: str
    size: int
    path: Path


class BlobStore:
    def __init__(self, directory: Path, expiry: float = DEFAULT_EXPIRY) -> None:
        self.directory = directory
        self.expiry = expiry
        self._tmp = directory / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path_of(self, blob_id: str) -> Path | None:
        """The file holding ``blob_id``, or None when unknown or malformed."""
        if not BLOB_ID.fullmatch(blob_id):
            return None
        path = self.directory / blob_id[1:]
        return path if path.is_file() else None

    async def put(self, chunks: AsyncIterator[bytes], limit: int) -> Blob:
        digest = hashlib.sha256()
        tmp = self._tmp / f"{os.getpid()}-{time.monotonic_ns()}"
        size = 0
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise BlobTooLarge(f"more than {limit} bytes")
                digest.update(chunk)
                write_all(fd, chunk)
            await asyncio.to_thread(os.fsync, fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        blob_id = "G" + digest.hexdigest()
        final = self.directory / blob_id[1:]
        os.replace(tmp, final)  # identical bytes: replacing resets the expiry clock
        return Blob(blob_id, size, final)

    def put_bytes(self, data: bytes) -> Blob:
        """Store ``data`` as an upload (Blob/copy, RFC 8620 §6.3)."""
        blob_id = "G" + hashlib.sha256(data).hexdigest()
        final = self.directory / blob_id[1:]
        tmp = self._tmp / f"{os.getpid()}-{time.monotonic_ns()}"
        write_file(tmp, data)
        os.replace(tmp, final)
        return Blob(blob_id, len(data), final)

    def sweep(self, now: float | None = None) -> int:
        """Remove uploads older than the expiry; returns how many went."""
        cutoff = (now if now is not None else time.time()) - self.expiry
        removed = 0
        for path in self.directory.iterdir():
            if path.is_file() and _mtime(path) < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        for path in self._tmp.iterdir():  # leftovers of a crash mid-upload
            if _mtime(path) < cutoff:
                path.unlink(missing_ok=True)
        if removed:
            log.info("removed %d expired uploads from %s", removed, self.directory)
        return removed


def _mtime(path: Path) -> float:
    """A file's mtime; +inf when it went between listing and stat (an upload
    finishing, or another sweep), so it is never taken as expired."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")
