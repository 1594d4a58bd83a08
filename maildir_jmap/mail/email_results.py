"""Email/query result lists (RFC 8620 §5.5): the sequences ``core.query.window``
pages through. ``OrderedResult`` keeps a receivedAt-ordered result up to date
across index changes; ``LazyIds`` computes a streamed search only as far as it is
read."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import overload

from maildir_jmap.core.query import Comparator
from maildir_jmap.store.index import Index
from maildir_jmap.store.records import EmailRecord


def by_received(sort: list[Comparator]) -> bool:
    return len(sort) == 1 and sort[0].property == "receivedAt"


class OrderedResult(Sequence[str]):
    """A result in (receivedAt, id) order that a change can update in place: an
    Email's receivedAt never changes, so a flag change or a move re-places only the
    Emails of the Threads it touched, instead of filtering and sorting the account
    again (at 100,000 messages, 400 ms after every change)."""

    def __init__(self, keys: list[tuple[int, str]], descending: bool, collapse: bool) -> None:
        self.keys = keys  # ascending (receivedAt, id)
        self.descending = descending
        self.collapse = collapse

    @classmethod
    def build(
        cls, records: Iterable[EmailRecord], descending: bool, collapse: bool
    ) -> OrderedResult:
        ordered = sorted(records, key=lambda r: (r.received, r.id), reverse=descending)
        kept = [(r.received, r.id) for r in collapsed(ordered, collapse)]
        if descending:
            kept.reverse()
        return cls(kept, descending, collapse)

    def update(
        self,
        index: Index,
        predicate: Callable[[EmailRecord], bool],
        threads: set[str],
        emails: set[str],
        keys_known: bool = False,
    ) -> None:
        """Re-place every member of ``threads`` and every Email in ``emails``.

        ``keys_known``: no Email came back under its id since this result was made,
        so an Email still in the index has the key it was placed under, and is
        taken out by bisection; otherwise (or if one is gone) by a pass over the
        whole result, which at 45,000 keys cost ~3 ms per flag change."""
        affected = set(emails)
        for thread_id in threads:
            thread = index.threads.get(thread_id)
            if thread is not None:
                affected.update(thread.email_ids)
        found = index.emails
        if keys_known and all(e in found for e in affected):
            keys = self.keys
            for email_id in affected:
                key = (found[email_id].received, email_id)
                at = bisect.bisect_left(keys, key)
                if at < len(keys) and keys[at] == key:
                    del keys[at]
        else:
            self.keys = [k for k in self.keys if k[1] not in affected]
        matching = [found[e] for e in affected if e in found and predicate(found[e])]
        if self.collapse:
            best: dict[str, tuple[int, str]] = {}
            for rec in matching:
                key = (rec.received, rec.id)
                current = best.get(rec.thread_id)
                if current is None or (key > current if self.descending else key < current):
                    best[rec.thread_id] = key
            inserts = list(best.values())
        else:
            inserts = [(rec.received, rec.id) for rec in matching]
        for key in inserts:
            bisect.insort(self.keys, key)

    def __len__(self) -> int:
        return len(self.keys)

    @overload
    def __getitem__(self, item: int) -> str: ...

    @overload
    def __getitem__(self, item: slice) -> Sequence[str]: ...

    def __getitem__(self, item: int | slice) -> str | Sequence[str]:
        size = len(self.keys)
        if isinstance(item, slice):
            start, stop, step = item.indices(size)
            if step != 1 or stop <= start:
                return [self[i] for i in range(start, stop, step)]
            if self.descending:  # a page of an initial sync: one slice of the keys
                return [key[1] for key in reversed(self.keys[size - stop : size - start])]
            return [key[1] for key in self.keys[start:stop]]
        if item < 0:
            item += size
        if not 0 <= item < size:
            raise IndexError(item)
        return self.keys[size - 1 - item if self.descending else item][1]

    def __iter__(self) -> Iterator[str]:
        keys = reversed(self.keys) if self.descending else iter(self.keys)
        return (key[1] for key in keys)


def collapsed(records: Iterable[EmailRecord], collapse: bool) -> Iterator[EmailRecord]:
    """Records in order; with ``collapse`` only the first of each Thread (RFC 8621 §4.4.3)."""
    seen: set[str] = set()
    for rec in records:
        if not collapse or rec.thread_id not in seen:
            seen.add(rec.thread_id)
            yield rec


class LazyIds(Sequence[str]):
    """A result list computed as far as it is read: slices and ``index`` pull more
    from ``source``; ``len`` (calculateTotal, a negative position) reads it all."""

    def __init__(self, source: Iterator[str]) -> None:
        self._items: list[str] = []
        self._source: Iterator[str] | None = source

    def _fill(self, wanted: int | None) -> None:
        source = self._source
        while source is not None and (wanted is None or len(self._items) < wanted):
            try:
                self._items.append(next(source))
            except StopIteration:
                self._source = source = None

    def __len__(self) -> int:
        self._fill(None)
        return len(self._items)

    @overload
    def __getitem__(self, item: int) -> str: ...

    @overload
    def __getitem__(self, item: slice) -> Sequence[str]: ...

    def __getitem__(self, item: int | slice) -> str | Sequence[str]:
        if isinstance(item, slice):
            start, stop = item.start or 0, item.stop
            bounded = stop is not None and stop >= 0 and start >= 0 and item.step is None
            self._fill(stop if bounded else None)
            return self._items[item]
        self._fill(item + 1 if item >= 0 else None)
        return self._items[item]

    def __iter__(self) -> Iterator[str]:
        position = 0
        while True:
            self._fill(position + 1)
            if position >= len(self._items):
                return
            yield self._items[position]
            position += 1
