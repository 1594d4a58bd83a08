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

Envelopes are rows keyed by the Email id read as integers (``view_key``: the
id's 96 bits as a 64-bit rowid and the 32 left over, checked on each read): an
initial sync reads tens of thousands of them, and a rowid is one B-tree search
where a text key was two (its index, then the table).

Body views are kept as JSON text too (mime/views.py ``BodyText``); one kept in
the earlier form, a msgpack map, is read as well (``body_text``), so an index
built before needs no rewrite. A body view stored as NULL means "not kept" (text
larger than MAX_VIEW_CHARS): Email/get parses that message from its file, and
does not try to keep it again.
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, cast

import orjson

from maildir_jmap.mime.views import (
    AT,
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
Email/get writes, in one text (mime/views.py ``pack_envelope``), keyed by
``view_key`` in the table ``envelope_members``."""
PackedRow = tuple[str, bytes, bytes | None]
"""(Email id, packed envelope, packed body view or None) as the worker pool makes them."""
Key = tuple[int, int]


_KEY = struct.Struct("<qI")


def view_key(email_id: str) -> Key:
    """An Email id as (rowid, check): the 12 bytes a server-made id spells in hex
    (mime/summary.py ``email_id``), or for any other id 12 bytes of its BLAKE2b,
    as a signed 64-bit rowid and the 32 bits left over (little-endian)."""
    if len(email_id) == 25 and email_id[0] == "M":
        try:
            return cast(Key, _KEY.unpack(bytes.fromhex(email_id[1:])))
        except (ValueError, struct.error):  # not hex, or hex with spaces: fewer bytes
            pass
    digest = hashlib.blake2b(email_id.encode("utf-8", "surrogatepass"), digest_size=12)
    return cast(Key, _KEY.unpack(digest.digest()))


def view_keys(email_ids: list[str]) -> list[Key]:
    """``view_key`` of each id; of server-made ids in one decoding of them all
    (an initial sync reads 5,000 at a time)."""
    if all(len(e) == 25 and e[0] == "M" for e in email_ids):
        try:
            raw = bytes.fromhex("".join([e[1:] for e in email_ids]))
        except ValueError:
            raw = b""
        if len(raw) == _KEY.size * len(email_ids):  # no white space, which fromhex skips
            return list(_KEY.iter_unpack(raw))
    return [view_key(e) for e in email_ids]


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
            "CREATE TABLE IF NOT EXISTS envelope_members"
            " (key INTEGER PRIMARY KEY, tail INTEGER NOT NULL, data BLOB NOT NULL)"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS bodies (email_id TEXT PRIMARY KEY, data BLOB)")
        if self._db.execute("PRAGMA user_version").fetchone()[0] < VERSION:
            self._envelopes_as_members()

    def _envelopes_as_members(self) -> None:
        """Move envelopes kept before VERSION 2 (a msgpack map, then an array of
        the values, keyed by the id as text) into ``envelope_members``, once:
        a few seconds at 100k Emails, so that reading them costs no conversion."""
        old = self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'envelopes'"
        ).fetchone()
        moved = []
        if old is not None:
            for email_id, data in self._db.execute("SELECT email_id, data FROM envelopes"):
                if data:  # a map comes without a preview: Account.open adds the records'
                    moved.append((*view_key(email_id), envelope_text(data)))
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO envelope_members VALUES (?, ?, ?)", moved)
            self._db.execute("DROP TABLE IF EXISTS envelopes")
            self._db.execute(f"PRAGMA user_version = {VERSION}")

    def _rows(self, select: str, keys: list[Any]) -> Iterator[tuple[Any, ...]]:
        """The rows of ``select`` (``{marks}`` standing for the keys' placeholders),
        BATCH keys at a time; the caller holds the lock."""
        for start in range(0, len(keys), BATCH):
            chunk = keys[start : start + BATCH]
            marks = ",".join("?" * len(chunk))
            yield from self._db.execute(select.format(marks=marks), chunk).fetchall()

    def _envelopes(self, email_ids: list[str]) -> dict[str, EnvelopeText]:
        """Kept envelopes by Email id, whole or not; the caller holds the lock."""
        wanted = dict(zip(view_keys(email_ids), email_ids, strict=True))
        select = "SELECT key, tail, data FROM envelope_members WHERE key IN ({marks})"
        found = {}
        for key, tail, data in self._rows(select, list({key for key, _ in wanted})):
            email_id = wanted.get((key, tail))
            if email_id is not None:  # else another Email whose id shares 64 bits
                found[email_id] = data
        return found

    def envelopes(self, email_ids: list[str]) -> dict[str, EnvelopeText]:
        """Envelopes by Email id, as JSON members; one kept without its preview is
        left out, to be made again."""
        with self._lock:
            found = self._envelopes(email_ids)
        return {e: text for e, text in found.items() if is_whole(text)}

    def _bodies(self, email_ids: list[str]) -> dict[str, BodyText | None]:
        select = "SELECT email_id, data FROM bodies WHERE email_id IN ({marks})"
        return {
            email_id: None if data is None else body_text(data)
            for email_id, data in self._rows(select, email_ids)
        }

    def bodies(self, email_ids: list[str]) -> dict[str, BodyText | None]:
        """Body views by Email id, as JSON text; None for one stored as not kept."""
        with self._lock:
            return self._bodies(email_ids)

    def whole(
        self, email_ids: list[str]
    ) -> tuple[dict[str, EnvelopeText], dict[str, BodyText | None]]:
        """``envelopes`` and ``bodies`` in one hold of the lock (a client opening
        messages asks for both; a body is kept only with its envelope)."""
        with self._lock:
            envelopes = {e: t for e, t in self._envelopes(email_ids).items() if is_whole(t)}
            # kept without its preview: made again, body and all
            bodies = self._bodies(list(envelopes))
        return envelopes, bodies

    def _put_rows(
        self,
        envelopes: Iterable[tuple[str, EnvelopeText]],
        bodies: Iterable[tuple[str, bytes | None]],
    ) -> None:
        """The caller holds the lock."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO envelope_members VALUES (?, ?, ?)",
                [(*view_key(e), text) for e, text in envelopes],
            )
            self._db.executemany("INSERT OR REPLACE INTO bodies VALUES (?, ?)", bodies)

    def put(self, envelopes: dict[str, EnvelopeText], bodies: dict[str, BodyText | None]) -> None:
        if not envelopes and not bodies:
            return
        with self._lock:
            self._put_rows(
                envelopes.items(),
                [(k, None if v is None else v.packed()) for k, v in bodies.items()],
            )

    def put_packed(self, rows: list[PackedRow]) -> None:
        """Views the worker pool made and packed, in one transaction."""
        if not rows:
            return
        with self._lock:
            self._put_rows(
                [(e, envelope_text(v)) for e, v, _ in rows], [(e, b) for e, _, b in rows]
            )

    def add_previews(self, previews: dict[str, str]) -> int:
        """Give the envelopes kept without a preview theirs (from the records of an
        index written before previews were kept here); returns how many changed.
        Envelopes that have one already are left as they are, so it can run again."""
        with self._lock:
            found = self._envelopes(list(previews))
            changed = []
            for email_id, text in found.items():
                if text[0] == AT["preview"]:
                    values = [*envelope_values(text), orjson.dumps(previews[email_id])]
                    changed.append((email_id, pack_envelope(values)))
            self._put_rows(changed, [])
        return len(changed)

    def keep_only(self, email_ids: Iterable[str]) -> int:
        """Drop the views of Emails not in ``email_ids``; returns how many Emails went."""
        wanted = set(email_ids)
        keys = {view_key(e) for e in wanted}
        with self._lock:
            rows = self._db.execute("SELECT key, tail FROM envelope_members").fetchall()
            envelopes = [(key,) for key, tail in rows if (key, tail) not in keys]
            have = [row[0] for row in self._db.execute("SELECT email_id FROM bodies")]
            bodies = [(e,) for e in have if e not in wanted]
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("DELETE FROM envelope_members WHERE key = ?", envelopes)
                self._db.executemany("DELETE FROM bodies WHERE email_id = ?", bodies)
        dropped = {key for (key,) in envelopes}
        return len(dropped) + sum(1 for (e,) in bodies if view_key(e)[0] not in dropped)

    def close(self) -> None:
        with self._lock:
            self._db.close()
