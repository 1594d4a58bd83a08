"""The push hub: fans StateChange objects (RFC 8620 §7.1) out to listeners.

Publishers (the store's commit, from any thread) call ``publish``; each listener
(an EventSource stream, later a WebSocket or a PushSubscription sender) owns an
asyncio queue on the event loop it was created on. Publishing never blocks and
never holds an account lock while listeners wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from maildir_jmap.core.types import JSONObject

log = logging.getLogger(__name__)
QUEUE_LIMIT = 256
ENDED: Mapping[str, Mapping[str, str]] = MappingProxyType({})
"""Queued last to a listener whose credential ended: its stream closes (issue 17)."""


def state_change(changed: Mapping[str, Mapping[str, str]]) -> JSONObject:
    """The §7.1 object: ``changed`` maps account id -> type name -> new state."""
    return {"@type": "StateChange", "changed": {a: dict(t) for a, t in changed.items()}}


@dataclass(eq=False)
class Listener:
    account_ids: frozenset[str] | None
    """None: every account (the PushSubscription sender)."""
    loop: asyncio.AbstractEventLoop
    credential: str = ""
    """The credential the stream was opened with; "" for the server's own."""
    queue: asyncio.Queue[Mapping[str, Mapping[str, str]]] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_LIMIT)
    )

    def _offer(self, changed: Mapping[str, Mapping[str, str]]) -> None:
        try:
            self.queue.put_nowait(changed)
        except asyncio.QueueFull:
            # A listener that stopped reading loses intermediate events, not the
            # newest: drop the oldest, since each event carries full new states.
            self.queue.get_nowait()
            self.queue.put_nowait(changed)


class Hub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: set[Listener] = set()

    def subscribe(self, account_ids: Iterable[str], credential: str = "") -> Listener:
        listener = Listener(frozenset(account_ids), asyncio.get_running_loop(), credential)
        with self._lock:
            self._listeners.add(listener)
        return listener

    def subscribe_all(self) -> Listener:
        listener = Listener(None, asyncio.get_running_loop())
        with self._lock:
            self._listeners.add(listener)
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.discard(listener)

    def count(self) -> int:
        """Connected listeners (EventSource, WebSocket); the all-accounts sender
        is not one."""
        with self._lock:
            return sum(1 for lis in self._listeners if lis.account_ids is not None)

    def listening(self, account_id: str) -> bool:
        """Whether a connected listener follows ``account_id``."""
        with self._lock:
            return any(
                lis.account_ids is not None and account_id in lis.account_ids
                for lis in self._listeners
            )

    def credentials(self) -> set[str]:
        """The credentials open streams were opened with."""
        with self._lock:
            return {lis.credential for lis in self._listeners if lis.credential}

    def end(self, credential: str) -> int:
        """Close every stream opened with ``credential`` (a revoked token, a changed
        password); how many there were."""
        with self._lock:
            targets = [lis for lis in self._listeners if lis.credential == credential]
            self._listeners.difference_update(targets)
        for listener in targets:
            with contextlib.suppress(RuntimeError):  # its loop has closed
                listener.loop.call_soon_threadsafe(listener._offer, ENDED)
        return len(targets)

    def publish(self, account_id: str, states: Mapping[str, str]) -> None:
        """Tell every listener of ``account_id`` the new ``states`` (type -> state)."""
        if not states:
            return
        changed = {account_id: dict(states)}
        with self._lock:
            targets = [
                lis
                for lis in self._listeners
                if lis.account_ids is None or account_id in lis.account_ids
            ]
        for listener in targets:
            try:
                listener.loop.call_soon_threadsafe(listener._offer, changed)
            except RuntimeError:  # its loop has closed
                self.unsubscribe(listener)
