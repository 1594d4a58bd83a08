"""Records the Maildir has no file for: Identities and EmailSubmissions (DESIGN:
"the things only the index knows").

Theory of operation. One ``ObjectStore`` per account holds each type's records
as plain dicts, with one modseq counter across its types, the modseq at which
each record was created and last changed, and tombstones for destroyed ones, so
/changes and /queryChanges work exactly as for the Maildir types. State strings
are ``<epoch>-<modseq>`` with an epoch of its own: a lost or rebuilt file is
recognised and answered with cannotCalculateChanges. These tables are small
(a few identities, a few thousand submissions), so ``save`` rewrites the whole
file atomically (tmp, fsync, rename, fsync dir) before the response is sent.
Callers hold the account lock.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from maildir_jmap.durable import replace_file

log = logging.getLogger(__name__)

FILE_NAME = "objects.msgpack"
MAX_TOMBSTONES = 2000
"""Per type: /changes reaches back this many destroyed records."""


@dataclass
class Stamp:
    created: int
    changed: int
    destroyed: bool = False


@dataclass
class ObjectStore:
    path: Path
    epoch: str = field(default_factory=lambda: secrets.token_hex(4))
    modseq: int = 0
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    stamps: dict[str, dict[str, Stamp]] = field(default_factory=dict)
    type_modseq: dict[str, int] = field(default_factory=dict)
    floor: dict[str, int] = field(default_factory=dict)
    """Per type: the oldest modseq /changes can still answer from."""
    dirty: set[str] = field(default_factory=set)
    """Types changed since the last ``save``."""

    @classmethod
    def open(cls, state_dir: Path) -> ObjectStore:
        path = state_dir / FILE_NAME
        try:
            data = msgpack.unpackb(path.read_bytes(), raw=False, strict_map_key=False)
        except FileNotFoundError:
            return cls(path)
        except (ValueError, msgpack.UnpackException):
            # Better a new epoch (clients resync) than serving a damaged table.
            log.exception("%s is unreadable; starting afresh", path)
            return cls(path)
        stamps = {
            t: {i: Stamp(*s) for i, s in entries.items()} for t, entries in data["stamps"].items()
        }
        return cls(
            path,
            data["epoch"],
            data["modseq"],
            data["records"],
            stamps,
            data["type_modseq"],
            data["floor"],
        )

    def save(self) -> dict[str, str]:
        """Persist (fsynced); the new states of the types changed since the last save."""
        if not self.dirty:
            return {}
        body = {
            "epoch": self.epoch,
            "modseq": self.modseq,
            "records": self.records,
            "stamps": {
                t: {i: [s.created, s.changed, s.destroyed] for i, s in entries.items()}
                for t, entries in self.stamps.items()
            },
            "type_modseq": self.type_modseq,
            "floor": self.floor,
        }
        replace_file(self.path, msgpack.packb(body, use_bin_type=True))
        changed = {t: self.state(t) for t in sorted(self.dirty)}
        self.dirty.clear()
        return changed

    # -- reading ----------------------------------------------------------------

    def state(self, type_name: str) -> str:
        return f"{self.epoch}-{self.type_modseq.get(type_name, 0)}"

    def parse_state(self, type_name: str, state: str) -> int | None:
        """The modseq a state string stands for, if /changes can answer from it."""
        epoch, _, number = state.partition("-")
        if epoch != self.epoch or not number.isdigit():
            return None
        since = int(number)
        if since < self.floor.get(type_name, 0) or since > self.modseq:
            return None
        return since

    def get(self, type_name: str, record_id: str) -> dict[str, Any] | None:
        return self.records.get(type_name, {}).get(record_id)

    def all(self, type_name: str) -> Iterator[dict[str, Any]]:
        return iter(list(self.records.get(type_name, {}).values()))

    def change_log(self, type_name: str, since: int) -> list[tuple[int, str, bool, bool]]:
        """(modseq, id, created after ``since``, destroyed) of records changed after
        ``since``: the input of core.standard.compute_changes."""
        return [
            (s.changed, record_id, s.created > since, s.destroyed)
            for record_id, s in self.stamps.get(type_name, {}).items()
            if s.changed > since
        ]

    # -- writing ----------------------------------------------------------------

    def _next(self, type_name: str) -> int:
        self.modseq += 1
        self.type_modseq[type_name] = self.modseq
        self.dirty.add(type_name)
        return self.modseq

    def new_id(self, prefix: str) -> str:
        return prefix + secrets.token_hex(8)

    def put(self, type_name: str, record: dict[str, Any]) -> None:
        """Create or replace ``record`` (keyed by its ``id``)."""
        record_id = record["id"]
        modseq = self._next(type_name)
        table = self.records.setdefault(type_name, {})
        stamps = self.stamps.setdefault(type_name, {})
        old = stamps.get(record_id)
        created = old.created if old is not None and not old.destroyed else modseq
        stamps[record_id] = Stamp(created, modseq)
        table[record_id] = record

    def drop(self, type_name: str, record_id: str) -> bool:
        table = self.records.get(type_name, {})
        if table.pop(record_id, None) is None:
            return False
        modseq = self._next(type_name)
        stamps = self.stamps.setdefault(type_name, {})
        stamps[record_id] = Stamp(stamps[record_id].created, modseq, destroyed=True)
        self._prune(type_name)
        return True

    def _prune(self, type_name: str) -> None:
        stamps = self.stamps[type_name]
        dead = sorted((s.changed, i) for i, s in stamps.items() if s.destroyed)
        for changed, record_id in dead[: max(0, len(dead) - MAX_TOMBSTONES)]:
            del stamps[record_id]
            self.floor[type_name] = max(self.floor.get(type_name, 0), changed)
