"""Full-text search: an SQLite FTS5 index in the state directory.

Derived data only: it can be deleted at any time and is rebuilt from the
messages. ``sync`` brings it in step with the index (adds Emails it has not
seen, drops the ones that are gone) and remembers the modseq it synced to, so
a query only pays for what changed since. The unicode61 tokenizer with
``remove_diacritics 2`` makes matching case- and diacritic-insensitive.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)

COLUMNS = ("subject", "sender", "recipients", "cc", "bcc", "body")
SCHEMA_VERSION = 1
# Built from the constant column list above, never from input.
_INSERT = f"INSERT INTO fts (rowid, {', '.join(COLUMNS)}) VALUES (?{', ?' * len(COLUMNS)})"  # noqa: S608
_WORD = re.compile(r"\w+", re.UNICODE)

Document = dict[str, str]
"""Column -> text for one Email."""


def match_expression(text: str, columns: Iterable[str] | None = None) -> str | None:
    """An FTS5 query matching every word of ``text`` as a prefix, in ``columns``
    (all when None); None when ``text`` has no words (it matches everything)."""
    words = _WORD.findall(text)
    if not words:
        return None
    terms = " AND ".join(f'"{word}"*' for word in words)
    if columns is None:
        return terms
    return "{" + " ".join(columns) + "} : (" + terms + ")"


class SearchIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # derived data: rebuildable
        self._create()

    def _create(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            self._db.executescript("DROP TABLE IF EXISTS docs; DROP TABLE IF EXISTS fts;")
        self._db.executescript(
            f"""
            CREATE TABLE IF NOT EXISTS docs (rowid INTEGER PRIMARY KEY, email_id TEXT UNIQUE);
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
            CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
                {", ".join(COLUMNS)}, tokenize='unicode61 remove_diacritics 2'
            );
            PRAGMA user_version = {SCHEMA_VERSION};
            """
        )

    def synced(self) -> tuple[str, int]:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'synced'").fetchone()
        if row is None:
            return "", -1
        epoch, _, modseq = str(row[0]).partition("-")
        return epoch, int(modseq)

    def sync(
        self,
        epoch: str,
        modseq: int,
        email_ids: set[str],
        document: Callable[[str], Document | None],
    ) -> int:
        """Index Emails in ``email_ids`` not yet indexed, drop the ones not there;
        returns how many were added."""
        with self._lock:
            if self.synced() == (epoch, modseq):
                return 0
            have = {row[0]: row[1] for row in self._db.execute("SELECT email_id, rowid FROM docs")}
            gone = [rowid for email_id, rowid in have.items() if email_id not in email_ids]
            missing = [e for e in email_ids if e not in have]
            self._db.execute("BEGIN")
            try:
                for rowid in gone:
                    self._db.execute("DELETE FROM fts WHERE rowid = ?", (rowid,))
                    self._db.execute("DELETE FROM docs WHERE rowid = ?", (rowid,))
                added = 0
                for email_id in missing:
                    doc = document(email_id)
                    if doc is None:
                        continue
                    cursor = self._db.execute("INSERT INTO docs (email_id) VALUES (?)", (email_id,))
                    row = (cursor.lastrowid, *(doc.get(c, "") for c in COLUMNS))
                    self._db.execute(_INSERT, row)
                    added += 1
                self._db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('synced', ?)",
                    (f"{epoch}-{modseq}",),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            if added or gone:
                log.info("search index %s: %d added, %d removed", self.path, added, len(gone))
            return added

    def search(self, expression: str) -> set[str]:
        """Email ids whose document matches an FTS5 expression."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT docs.email_id FROM fts JOIN docs ON docs.rowid = fts.rowid "
                    "WHERE fts MATCH ?",
                    (expression,),
                ).fetchall()
            except sqlite3.OperationalError:
                return set()
        return {row[0] for row in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()
