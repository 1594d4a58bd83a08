"""Which process owns an account's state: an exclusive ``flock`` on ``owner.lock`` in
the account's state directory, taken by ``Account.open`` and held until ``close``.

Two processes writing one journal or index would each apply only their own changes
and overwrite the other's snapshot, so the second refuses (``AccountOwned``) however
requests were routed. The kernel drops the lock when its holder exits, even by
SIGKILL, so unlike a pid file nothing stale is left to break. ``flock`` is per open
file, so a second open in the same process is refused too. On NFS, Linux emulates
``flock`` with a whole-file POSIX lock the server arbitrates, so the rule holds
across hosts sharing the state directory.

The file's text names the holder (pid, host, since when) for the refusal's message;
it is advisory only, the lock is the truth.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_NAME = "owner.lock"


class AccountOwned(OSError):
    """Another process (or another open in this one) owns the account's state."""

    def __init__(self, state_dir: Path, holder: str) -> None:
        super().__init__(f"the account state at {state_dir} is in use by {holder}")
        self.state_dir = state_dir
        self.holder = holder


@dataclass
class OwnerLock:
    path: Path
    fd: int | None

    @classmethod
    def take(cls, state_dir: Path) -> OwnerLock:
        """Own ``state_dir`` or raise ``AccountOwned`` at once (never waits)."""
        path = state_dir / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise AccountOwned(state_dir, holder) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, describe_self().encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        """Give the account up; closing the file drops the lock. Idempotent."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)


def describe_self() -> str:
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return f"pid {os.getpid()} on {socket.gethostname()} since {started}"


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "another process"
