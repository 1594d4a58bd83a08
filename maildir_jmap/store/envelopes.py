"""A cache of each Email's envelope: the convenience properties of RFC 8621 §4.1.3
(from, to, subject, sentAt, messageId, ...) as Email/get returns them.

What Dovecot's dovecot.index.cache is to IMAP's ENVELOPE: list views and initial
syncs ask for these properties of thousands of Emails, and parsing each header
section again costs far more than reading a row. Emails never change (their id
is their content's hash), so an entry never goes stale; entries of Emails that
are gone are dropped at compaction. Derived data in the state directory: delete
the file and it fills again as Emails are read.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgpack

BATCH = 500  # ids per SELECT (SQLite's variable limit is higher; this keeps plans simple)


class EnvelopeCache:
    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")  # derived: a lost write refills
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS envelopes (email_id TEXT PRIMARY KEY, data BLOB)"
        )

    def get_many(self, email_ids: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        with self._lock:
            for start in range(0, len(email_ids), BATCH):
                chunk = email_ids[start : start + BATCH]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT email_id, data FROM envelopes WHERE email_id IN ({marks})",  # noqa: S608
                    chunk,
                ).fetchall()
                for email_id, data in rows:
                    out[email_id] = msgpack.unpackb(data)
        return out

    def put_many(self, envelopes: dict[str, dict[str, Any]]) -> None:
        if not envelopes:
            return
        rows = [(k, msgpack.packb(v)) for k, v in envelopes.items()]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO envelopes VALUES (?, ?)", rows)

    def keep_only(self, email_ids: Iterable[str]) -> int:
        """Drop the entries of Emails not in ``email_ids``; returns how many went."""
        wanted = set(email_ids)
        with self._lock:
            have = [row[0] for row in self._db.execute("SELECT email_id FROM envelopes")]
            gone = [(e,) for e in have if e not in wanted]
            self._db.executemany("DELETE FROM envelopes WHERE email_id = ?", gone)
        return len(gone)

    def close(self) -> None:
        with self._lock:
            self._db.close()
