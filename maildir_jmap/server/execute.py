"""Running a JMAP Request for a user: the per-user limit on concurrent requests,
and the account locks held from the first call that touches an account to the
end of the request (DESIGN: Concurrency). Transports (http/api.py,
http/websocket.py) parse and answer; this runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from maildir_jmap.core.dispatch import AccountAccess, Context, Registry, process
from maildir_jmap.core.errors import MethodError
from maildir_jmap.core.request import Request
from maildir_jmap.core.types import JSONObject
from maildir_jmap.store.account import Account


class SlotsFull(Exception):
    """The user already runs as many as the limit allows."""


class Slots:
    """How many of something each user has running, under a limit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, int] = {}

    def running(self, user: str) -> int:
        with self._lock:
            return self._running.get(user, 0)

    @contextmanager
    def take(self, user: str, limit: int) -> Iterator[None]:
        """Hold one of ``limit`` slots of ``user``; SlotsFull when none is free."""
        with self._lock:
            if self._running.get(user, 0) >= limit:
                raise SlotsFull(user)
            self._running[user] = self._running.get(user, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._running[user] -= 1


def run_request(
    request: Request, ctx: Context, registry: Registry, lock_timeout: float
) -> JSONObject:
    """Run the method calls (in a worker thread), each account locked from its
    first call to the end; the Response arguments without ``sessionState``."""
    held: list[Account] = []

    def enter(access: AccountAccess) -> None:
        account = access.backend
        assert isinstance(account, Account)
        if not account.lock.acquire(timeout=lock_timeout):
            raise MethodError("serverUnavailable", "The account is busy; try again shortly.")
        if account.closed:  # closed as idle between the lookup and now
            account.lock.release()
            raise MethodError("serverUnavailable", "The account was reopening; try again.")
        held.append(account)

    ctx.enter_account = enter
    try:
        return process(request, ctx, registry)
    finally:
        for account in held:
            account.lock.release()
