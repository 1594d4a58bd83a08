"""Each Email's views as Email/get returns them (mime/views.py): its envelope (the
convenience properties of RFC 8621 §4.1.3) and its body view (structure, parts
and text values with the default bodyProperties).

What Dovecot's dovecot.index.cache is to IMAP's ENVELOPE and BODYSTRUCTURE: list
views and initial syncs ask for envelopes of thousands of Emails, clients opening
messages ask for whole bodies, and parsing each message again costs far more than
reading a row (issue 18). Views are made at index time in the worker pool and
stored as they come; an Email made over JMAP gets them on its first read. Emails
never change (their id is their content's hash), so an entry never goes stale;
entries of Emails that are gone are dropped at compaction. Derived data in the
state directory: delete the file and it fills again as Emails are read.

Body views are kept as JSON text too (mime/views.py ``BodyText``); one kept in
the earlier form, a msgpack map, is read as well (``body_text``), so an index
built before needs no rewrite. A body view stored as NULL means "not kept" (text
larger than MAX_VIEW_CHARS): Email/get parses that message from its file, and
does not try to keep it again.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import orjson

from maildir_jmap.mime.views import (
    AT,
    ENVELOPE,
    BodyText,
    EnvelopeText,
    body_text,
    envelope_text,
    envelope_values,
    is_whole,
    pack_envelope,
)

MAP_BYTES = 1 << 32  # up to 4 GiB of the file mapped (SQLite maps what there is)
BATCH = 500  # ids per SELECT (SQLite's variable limit is higher; this keeps plans simple)
FORMER = "envelopes.sqlite"  # before issue 18's body views: removed, it refills here
VERSION = 2
"""1: envelopes are kept as JSON text by property; 2: as the JSON members
Email/get writes, in one text (mime/views.py ``pack_envelope``)."""
FORMER_FORMS = range(0x80, 0xA0)
"""First bytes of the envelopes kept before VERSION 2 (a msgpack fixmap or
fixarray); the present form starts with its count of properties, 11 or 12."""
PackedRow = tuple[str, bytes, bytes | None]
"""(Email id, packed envelope, packed body view or None) as the worker pool makes them."""


class ViewStore:
    def __init__(self, path: Path) -> None:
        for suffix in ("", "-wal", "-shm"):
            (path.parent / (FORMER + suffix)).unlink(missing_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")  # derived: a lost write refills
        # Read through a mapping of the file rather than a read() per page: an
        # initial sync of 45k envelopes at 100k read them in 274 ms, mapped 171.
        # The mapped pages are the file's, as reclaimable as the page cache.
        self._db.execute(f"PRAGMA mmap_size={MAP_BYTES}")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS envelopes (email_id TEXT PRIMARY KEY, data BLOB)"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS bodies (email_id TEXT PRIMARY KEY, data BLOB)")
        if self._db.execute("PRAGMA user_version").fetchone()[0] < VERSION:
            self._envelopes_as_text()

    def _envelopes_as_text(self) -> None:
        """Rewrite envelopes kept in a former form (a msgpack map, then an array of
        the values) in the present one, once: about three seconds at 100k Emails,
        so that reading them costs no conversion."""
        rows = self._db.execute("SELECT email_id, data FROM envelopes").fetchall()
        changed = []
        for email_id, data in rows:
            if not data or data[0] not in FORMER_FORMS:
                continue
            kept = msgpack.unpackb(data)
            if isinstance(kept, dict):  # no preview yet: Account.open adds the records'
                kept = [orjson.dumps(kept[prop]) for prop in ENVELOPE]
            changed.append((pack_envelope(kept), email_id))
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("UPDATE envelopes SET data = ? WHERE email_id = ?", changed)
            self._db.execute(f"PRAGMA user_version = {VERSION}")

    def _rows(self, select: str, email_ids: list[str]) -> Iterator[tuple[Any, ...]]:
        """The rows of ``select`` (``{marks}`` standing for the ids' placeholders),
        BATCH ids at a time; the caller holds the lock."""
        for start in range(0, len(email_ids), BATCH):
            chunk = email_ids[start : start + BATCH]
            marks = ",".join("?" * len(chunk))
            yield from self._db.execute(select.format(marks=marks), chunk).fetchall()

    def _read(
        self, table: str, email_ids: list[str], unpack: Callable[[bytes], Any]
    ) -> dict[str, Any]:
        select = f"SELECT email_id, data FROM {table} WHERE email_id IN ({{marks}})"  # noqa: S608
        with self._lock:
            return {
                email_id: None if data is None else unpack(data)
                for email_id, data in self._rows(select, email_ids)
            }

    def envelopes(self, email_ids: list[str]) -> dict[str, EnvelopeText]:
        """Envelopes by Email id, as JSON text (in KEPT's order); one kept without
        its preview is left out, to be made again."""
        found = self._read("envelopes", email_ids, envelope_text)
        return {e: text for e, text in found.items() if is_whole(text)}

    def bodies(self, email_ids: list[str]) -> dict[str, BodyText | None]:
        """Body views by Email id, as JSON text; None for one stored as not kept."""
        return self._read("bodies", email_ids, body_text)

    def whole(
        self, email_ids: list[str]
    ) -> tuple[dict[str, EnvelopeText], dict[str, BodyText | None]]:
        """``envelopes`` and ``bodies`` in one read (a client opening messages asks
        for both; a body is kept only with its envelope)."""
        envelopes: dict[str, EnvelopeText] = {}
        bodies: dict[str, BodyText | None] = {}
        select = (
            "SELECT e.email_id, e.data, b.email_id IS NOT NULL, b.data FROM envelopes e"
            " LEFT JOIN bodies b ON b.email_id = e.email_id WHERE e.email_id IN ({marks})"
        )
        with self._lock:
            for email_id, envelope, has_body, body in self._rows(select, email_ids):
                text = envelope_text(envelope)
                if not is_whole(text):
                    continue  # kept without its preview: made again, body and all
                envelopes[email_id] = text
                if has_body:
                    bodies[email_id] = None if body is None else body_text(body)
        return envelopes, bodies

    def put(self, envelopes: dict[str, EnvelopeText], bodies: dict[str, BodyText | None]) -> None:
        if not envelopes and not bodies:
            return
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO envelopes VALUES (?, ?)",
                list(envelopes.items()),
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO bodies VALUES (?, ?)",
                [(k, None if v is None else v.packed()) for k, v in bodies.items()],
            )

    def put_packed(self, rows: list[PackedRow]) -> None:
        """Views the worker pool made and packed, in one transaction."""
        if not rows:
            return
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO envelopes VALUES (?, ?)", [(e, v) for e, v, _ in rows]
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO bodies VALUES (?, ?)", [(e, b) for e, _, b in rows]
            )

    def add_previews(self, previews: dict[str, str]) -> int:
        """Give the envelopes kept without a preview theirs (from the records of an
        index written before previews were kept here); returns how many changed.
        Envelopes that have one already are left as they are, so it can run again."""
        with self._lock:
            rows = self._db.execute("SELECT email_id, data FROM envelopes").fetchall()
            changed = []
            for email_id, data in rows:
                preview = previews.get(email_id)
                if preview is None:
                    continue
                text = envelope_text(data)
                if text[0] == AT["preview"]:
                    values = [*envelope_values(text), orjson.dumps(preview)]
                    changed.append((pack_envelope(values), email_id))
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("UPDATE envelopes SET data = ? WHERE email_id = ?", changed)
        return len(changed)

    def keep_only(self, email_ids: Iterable[str]) -> int:
        """Drop the views of Emails not in ``email_ids``; returns how many Emails went."""
        wanted = set(email_ids)
        gone: set[str] = set()
        with self._lock:
            for table in ("envelopes", "bodies"):
                have = [row[0] for row in self._db.execute(f"SELECT email_id FROM {table}")]  # noqa: S608
                dropped = [(e,) for e in have if e not in wanted]
                if dropped:
                    with self._db:
                        self._db.execute("BEGIN")
                        self._db.executemany(
                            f"DELETE FROM {table} WHERE email_id = ?",  # noqa: S608
                            dropped,
                        )
                    gone.update(e for (e,) in dropped)
        return len(gone)

    def close(self) -> None:
        with self._lock:
            self._db.close()
