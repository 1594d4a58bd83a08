"""Full-text search: an SQLite FTS5 index in the state directory.

Derived data only: it can be deleted at any time and is rebuilt from the
messages. ``sync`` brings it in step with the index (adds Emails it has not
seen, drops the ones that are gone) and remembers the modseq it synced to, so
a query only pays for what changed since. The unicode61 tokenizer with
``remove_diacritics 2`` makes matching case- and diacritic-insensitive.

Each document's rowid is its Email's place in receivedAt order (``order_key``):
FTS5 walks a match's rowids backwards natively, so ``stream`` hands out the
newest matches first a chunk at a time, and a search that matches most of a
100,000-message account answers its first page without reading every hit.
"""

from __future__ import annotations

import functools
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

COLUMNS = ("subject", "sender", "recipients", "cc", "bcc", "body", "attachments")
SCHEMA_VERSION = 3  # 3: attachments' names and text/* attachments (issue 18)
# Built from the constant column list above, never from input.
_INSERT = (
    f"INSERT INTO fts (rowid, email_id, {', '.join(COLUMNS)}) "  # noqa: S608
    f"VALUES (?, ?{', ?' * len(COLUMNS)})"
)
_STAGE = (
    f"INSERT OR REPLACE INTO staged (email_id, {', '.join(COLUMNS)}) "  # noqa: S608
    f"VALUES (?{', ?' * len(COLUMNS)})"
)
_FROM_STAGE = (
    f"INSERT INTO fts (rowid, email_id, {', '.join(COLUMNS)}) "  # noqa: S608
    f"SELECT ?, email_id, {', '.join(COLUMNS)} FROM staged WHERE email_id = ?"
)
_MOVE = (
    f"INSERT INTO fts (rowid, email_id, {', '.join(COLUMNS)}) "  # noqa: S608
    f"SELECT ?, email_id, {', '.join(COLUMNS)} FROM fts WHERE rowid = ?"
)
_ID_BITS = 20
FIRST_CHUNK = 128
MAX_CHUNK = 8192


def order_key(received: int, email_id: str) -> int:
    """A rowid that sorts as (receivedAt, id) does: the receivedAt seconds, then the
    first 20 bits of the id's hash (ties within a second are rare, equal bits within
    a tie rarer still; ``sync`` steps past a taken key)."""
    return (max(received, 0) << _ID_BITS) | (int(email_id[1:6], 16) & ((1 << _ID_BITS) - 1))


_WORD = re.compile(r"[^\W_]+", re.UNICODE)  # letters and digits: unicode61 splits on "_"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # SQLite reads a query up to a NUL: never words

TOKENIZER = "unicode61 remove_diacritics 2"
_probe = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
_probe.execute(f"CREATE VIRTUAL TABLE probe USING fts5(text, tokenize='{TOKENIZER}')")
_probe.execute("CREATE VIRTUAL TABLE probe_words USING fts5vocab(probe, 'row')")
_probe_lock = threading.Lock()


@functools.lru_cache(maxsize=4096)
def _has_words(part: str) -> bool:
    """Whether unicode61 finds a word in ``part``, asked of SQLite itself: its
    Unicode tables are older than Python's (U+19B0 is a letter to Python, a mark
    to SQLite), and a quoted phrase of no words matches nothing."""
    if part.isascii():
        return _WORD.search(part) is not None
    with _probe_lock, _probe:
        _probe.execute("BEGIN")
        _probe.execute("INSERT INTO probe VALUES (?)", (part,))
        found = _probe.execute("SELECT count(*) FROM probe_words").fetchone()[0] > 0
        _probe.execute("DELETE FROM probe")
    return bool(found)


Document = dict[str, str]
"""Column -> text for one Email."""


def match_expression(text: str, columns: Iterable[str] | None = None) -> str | None:
    """An FTS5 query matching every white-space separated part of ``text`` (in
    ``columns``, all when None), its last word as a prefix; None when ``text`` has
    no words (it matches everything). Each part goes to FTS5 as a quoted phrase, so
    the tokenizer that split the documents splits the query too: Python's idea of a
    word character is not unicode61's (newer combining marks, private use), and a
    part like ``foo-bar`` or ``ann@example.org`` keeps its words in order."""
    parts = [part for part in _CONTROL.sub(" ", text).split() if _has_words(part)]
    if not parts:
        return None
    terms = " AND ".join('"' + part.replace('"', '""') + '"*' for part in parts)
    if columns is None:
        return terms
    return "{" + " ".join(columns) + "} : (" + terms + ")"


class SearchIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._staged = 0
        """Documents staged since the last ``add_staged`` (the temp table's rows)."""
        self._direct: dict[str, int] | None = None
        """In a first build (``begin_direct``): the rowid each staged document took."""
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # derived data: rebuildable
        self._create()

    def _create(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            # Another layout: start over, forgetting what it had synced to as well.
            self._db.executescript(
                "DROP TABLE IF EXISTS docs; DROP TABLE IF EXISTS fts; DROP TABLE IF EXISTS meta;"
            )
        self._db.executescript(
            f"""
            CREATE TABLE IF NOT EXISTS docs (rowid INTEGER PRIMARY KEY, email_id TEXT UNIQUE);
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
            CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
                email_id UNINDEXED, {", ".join(COLUMNS)},
                tokenize='{TOKENIZER}'
            );
            PRAGMA user_version = {SCHEMA_VERSION};
            CREATE TEMP TABLE IF NOT EXISTS staged
                (email_id TEXT PRIMARY KEY, {", ".join(COLUMNS)});
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
        email_ids: dict[str, int],
        document: Callable[[str], Document | None],
    ) -> int:
        """Index Emails in ``email_ids`` (id -> receivedAt) not yet indexed, drop the
        ones not there; returns how many were added."""
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
                    rowid = self._insert_doc(order_key(email_ids[email_id], email_id), email_id)
                    self._db.execute(_INSERT, (rowid, email_id, *(doc.get(c, "") for c in COLUMNS)))
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

    def begin_direct(self) -> None:
        """A first build: documents staged from here go straight into the full-text
        index, in one transaction that ``add_staged`` commits and ``discard_staged``
        rolls back, so the text is indexed while the pool is still parsing (staged
        apart, it was a quarter of a 100k build, with the workers idle). Only for
        an account nobody reads yet: the connection's transaction stays open."""
        with self._lock:
            self._db.execute("BEGIN")
            self._direct = {}

    def stage(self, email_id: str, document: Document, received: int | None = None) -> None:
        """Keep a document made at index time (in the worker pool, from the parse
        the summary did anyway) until its Email is in the index: ``add_staged``.
        Staged documents live in a temporary table: nothing of them outlives the
        connection, and memory stays flat however many a first index makes. In a
        first build they are indexed at once, under the order key of ``received``
        (the file's mtime as the worker read it)."""
        with self._lock:
            direct = self._direct
            if direct is not None and received is not None:
                if (
                    email_id in direct
                    or self._db.execute(
                        "SELECT 1 FROM docs WHERE email_id = ?", (email_id,)
                    ).fetchone()
                ):
                    return  # the same content again, or indexed before
                rowid = self._insert_doc(order_key(received, email_id), email_id)
                values = (rowid, email_id, *(document.get(c, "") for c in COLUMNS))
                self._db.execute(_INSERT, values)
                direct[email_id] = rowid
                return
            self._db.execute(_STAGE, (email_id, *(document.get(c, "") for c in COLUMNS)))
            self._staged += 1

    def add_staged(self, emails: Iterable[tuple[str, int]]) -> int:
        """Index the staged documents of these (Email id, receivedAt), now that the
        index has them, then forget every staged document; how many were added.
        An Email already indexed, or with nothing staged, is left to ``sync``."""
        added = 0
        with self._lock:
            if self._direct is not None:
                return self._commit_direct(dict(emails))
            if not self._staged:
                return 0  # a rescan that found no new message: no SQL at all
            self._staged = 0
            self._db.execute("BEGIN")
            try:
                for email_id, received in emails:
                    if self._db.execute(
                        "SELECT 1 FROM docs WHERE email_id = ?", (email_id,)
                    ).fetchone():
                        continue
                    if not self._db.execute(
                        "SELECT 1 FROM staged WHERE email_id = ?", (email_id,)
                    ).fetchone():
                        continue
                    rowid = self._insert_doc(order_key(received, email_id), email_id)
                    self._db.execute(_FROM_STAGE, (rowid, email_id))
                    added += 1
                self._db.execute("DELETE FROM staged")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return added

    def _commit_direct(self, emails: dict[str, int]) -> int:
        """End a first build: drop what no Email of the index took (a file that
        vanished), move a document whose file's mtime changed between the worker's
        read and the index's look (the order key must be the index's receivedAt),
        and commit. The caller holds the lock."""
        direct, self._direct = self._direct or {}, None
        try:
            for email_id, rowid in direct.items():
                received = emails.get(email_id)
                if received is None:
                    self._db.execute("DELETE FROM fts WHERE rowid = ?", (rowid,))
                    self._db.execute("DELETE FROM docs WHERE rowid = ?", (rowid,))
                elif rowid >> _ID_BITS != max(received, 0):
                    self._db.execute("DELETE FROM docs WHERE rowid = ?", (rowid,))
                    moved = self._insert_doc(order_key(received, email_id), email_id)
                    self._db.execute(_MOVE, (moved, rowid))
                    self._db.execute("DELETE FROM fts WHERE rowid = ?", (rowid,))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return sum(1 for email_id in direct if email_id in emails)

    def discard_staged(self) -> None:
        """Forget what an interrupted reconcile staged (nothing, usually: no SQL)."""
        with self._lock:
            if self._direct is not None:
                self._direct = None
                self._db.execute("ROLLBACK")
            if self._staged:
                self._db.execute("DELETE FROM staged")
                self._staged = 0

    def mark_synced(self, epoch: str, modseq: int) -> None:
        """Record that the index is current at ``modseq`` without looking (the
        caller knows no Email was added or removed since the last sync)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('synced', ?)",
                (f"{epoch}-{modseq}",),
            )

    def _insert_doc(self, key: int, email_id: str) -> int:
        """The docs row at ``key``, or the next free key when two Emails share one."""
        insert = "INSERT INTO docs (rowid, email_id) VALUES (?, ?)"
        for step in range(1 << _ID_BITS):
            try:
                self._db.execute(insert, (key + step, email_id))
            except sqlite3.IntegrityError as exc:
                if "rowid" not in str(exc):
                    raise  # the email_id itself is there: not ours to paper over
                continue
            return key + step
        raise RuntimeError(f"no free search key near {key}")

    def search(self, expression: str) -> set[str]:
        """Email ids whose document matches an FTS5 expression."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT email_id FROM fts WHERE fts MATCH ?", (expression,)
                ).fetchall()
            except sqlite3.OperationalError:
                return set()
        return {row[0] for row in rows}

    def stream(self, expression: str, newest_first: bool = True) -> Iterator[str]:
        """Email ids matching ``expression`` in receivedAt order, fetched in chunks
        that grow as the caller keeps reading (the lock is held per chunk only)."""
        if newest_first:
            sql = "SELECT rowid, email_id FROM fts WHERE fts MATCH ? AND rowid < ? "
            sql += "ORDER BY rowid DESC LIMIT ?"
            bound = 1 << 62
        else:
            sql = "SELECT rowid, email_id FROM fts WHERE fts MATCH ? AND rowid > ? "
            sql += "ORDER BY rowid LIMIT ?"
            bound = -1
        chunk = FIRST_CHUNK
        while True:
            with self._lock:
                try:
                    rows = self._db.execute(sql, (expression, bound, chunk)).fetchall()
                except sqlite3.OperationalError:
                    return
            for _, email_id in rows:
                yield email_id
            if len(rows) < chunk:
                return
            bound = rows[-1][0]
            chunk = min(chunk * 4, MAX_CHUNK)

    def close(self) -> None:
        with self._lock:
            self._db.close()
