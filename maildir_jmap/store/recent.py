"""Which records changed lately, in modseq order: what lets ``Index.change_log``
answer "what changed since modseq M" from the changes after M instead of from
every record of the account.

At 100,000 messages a full pass over the Emails costs ~6 ms, and every
Email/changes and every carried query result (mail/query_cache.py) made one per
request (profile of 50 clients on one account, issue 18). The log here holds the
last ``limit`` (modseq, id) pairs of each type; a question about an older modseq
than the log reaches (``floor``) gets None, and the caller scans as before.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable

LIMIT = 20_000


class RecentChanges:
    """(modseq, record id) per type, oldest first. Ids are references to strings
    the records hold already, modseqs a machine-word array: ~16 bytes an entry."""

    def __init__(self, floor: int = 0, limit: int = LIMIT) -> None:
        self.limit = limit
        self._floor: dict[str, int] = {}
        self._start = floor  # the floor of every type not seen yet
        self._modseqs: dict[str, array[int]] = {}
        self._ids: dict[str, list[str]] = {}

    def reset(self, floor: int) -> None:
        """Forget everything: only changes after ``floor`` will be answered (an
        index loaded from a snapshot knows its records, not their history)."""
        self._floor.clear()
        self._modseqs.clear()
        self._ids.clear()
        self._start = floor

    def note(self, type_name: str, modseq: int, record_id: str) -> None:
        """``record_id`` (of ``type_name``) took ``modseq``."""
        floor = self._floor.get(type_name, self._start)
        if modseq <= floor:
            return
        modseqs = self._modseqs.setdefault(type_name, array("q"))
        ids = self._ids.setdefault(type_name, [])
        if modseqs and modseq < modseqs[-1]:
            # Only an idempotent re-application (journal replay) goes back in time.
            at = bisect.bisect_right(modseqs, modseq)
            modseqs.insert(at, modseq)
            ids.insert(at, record_id)
        else:
            modseqs.append(modseq)
            ids.append(record_id)
        if len(ids) > self.limit:
            cut = len(ids) // 2
            self._floor[type_name] = modseqs[cut - 1]
            del modseqs[:cut]
            del ids[:cut]

    def since(self, type_name: str, since: int) -> Iterable[str] | None:
        """The ids of ``type_name`` that took a modseq after ``since``, each once
        (None: the log does not reach back that far)."""
        if since < self._floor.get(type_name, self._start):
            return None
        modseqs = self._modseqs.get(type_name)
        if modseqs is None:
            return ()
        at = bisect.bisect_right(modseqs, since)
        return dict.fromkeys(self._ids[type_name][at:])
