"""Which Thread each Message-ID belongs to, as threading asks (RFC 8621 §3).

Theory of operation. Every message leaves its Message-ID and the ids it refers
to, about one key per message, so at 100k messages a dict of them was 84 bytes
a message (an int key and its slot; issue 18: at most 1 KB per message in all).
Keys are 60 bits of each id's BLAKE2b hash (``message_key``). Most of them sit
in two parallel columns sorted by key: an ``array`` of the keys (8 bytes each)
and a list of the Threads' ids (8 bytes each: the strings are the Threads' own).
A key added since goes to a small dict; when that grows past an eighth of the
columns it is merged in, so an addition costs O(1) amortized and a lookup a
dict probe plus a binary search. A key keeps the first Thread it was given
(``setdefault``): a thread never moves because a later message named it.
"""

from __future__ import annotations

import hashlib
import heapq
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator

MERGE_FLOOR = 4096  # added keys kept in the dict at least, however small the columns


def message_key(message_id: str | int) -> int:
    """A Message-ID as the map keys it: 60 bits of its BLAKE2b hash. Two of a
    million ids share a key with odds of about 1 in 2.3 million; then two
    unrelated messages would share a Thread, nothing worse. An int is already a
    key (a snapshot keeps keys, not ids)."""
    if isinstance(message_id, int):
        return message_id
    raw = message_id.encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest()) >> 4


class MessageIds:
    """Message-ID (or its key) -> Thread id."""

    def __init__(self, pairs: Iterable[tuple[str | int, str]] = ()) -> None:
        self._keys = array("q")
        self._threads: list[str] = []
        self._added: dict[int, str] = {}
        keys, threads, last = self._keys, self._threads, -1
        for message_id, thread_id in pairs:
            key = message_key(message_id)
            if key > last and not self._added:
                keys.append(key)  # in order, as a snapshot has them: no sort, no garbage
                threads.append(thread_id)
                last = key
            else:
                self._added.setdefault(key, thread_id)
        self.compact()  # one sort, however many pairs

    def get(self, message_id: str | int) -> str | None:
        key = message_key(message_id)
        found = self._added.get(key)
        if found is not None:
            return found
        at = bisect_left(self._keys, key)
        if at < len(self._keys) and self._keys[at] == key:
            return self._threads[at]
        return None

    def setdefault(self, message_id: str | int, thread_id: str) -> str:
        """The Thread of ``message_id``, which becomes ``thread_id`` if it had none."""
        key = message_key(message_id)
        found = self.get(key)
        if found is not None:
            return found
        self._added[key] = thread_id
        if len(self._added) > max(MERGE_FLOOR, len(self._keys) // 8):
            self._merge()
        return thread_id

    def _merge(self) -> None:
        """Fold the added keys into the sorted columns."""
        pairs = sorted([*zip(self._keys, self._threads, strict=True), *self._added.items()])
        self._keys = array("q", [key for key, _ in pairs])
        self._threads = [thread_id for _, thread_id in pairs]
        self._added = {}

    def compact(self) -> None:
        """Fold in what was added (after loading: the dict's table is freed)."""
        if self._added:
            self._merge()

    def items(self) -> Iterator[tuple[int, str]]:
        """(key, Thread id) pairs in key order, as a snapshot keeps them."""
        yield from heapq.merge(
            zip(self._keys, self._threads, strict=True), sorted(self._added.items())
        )

    def __len__(self) -> int:
        return len(self._keys) + len(self._added)

    def __contains__(self, message_id: str | int) -> bool:
        return self.get(message_id) is not None
