"""The Account: one user's Maildir plus the state the server keeps for it.

For now it owns identity (the account id), where things live, whether the
Maildir can be written, and the lock under which requests (and later reconcile)
run. The index and journal attach here.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from maildir_jmap.store.blobs import BlobStore


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
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(cls, username: str, maildir: Path, state_root: Path) -> Account:
        account_id = account_id_for(username)
        state_dir = state_root / "accounts" / account_id
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        blobs = BlobStore(state_dir / "uploads")
        blobs.sweep()
        return cls(account_id, username, maildir, state_dir, blobs)

    @property
    def is_read_only(self) -> bool:
        """A Maildir we may not write is served read-only (RFC 8620 §2 isReadOnly)."""
        return not os.access(self.maildir, os.W_OK)
