"""Who is asking: password and token checks, failed-login throttling, and whether
a credential recorded earlier still holds. No HTTP here: http/auth.py reads the
Authorization header and hands the parts to ``Login``."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

import anyio.to_thread

from maildir_jmap.dovecot_auth import AuthUnavailable
from maildir_jmap.metrics import LOGINS
from maildir_jmap.tokens import TokenStore
from maildir_jmap.users import User, Users

log = logging.getLogger(__name__)


class Unauthorized(Exception):
    """No credentials, or credentials that do not check out."""


class Throttled(Unauthorized):
    """Too many failed logins for this user or from this address: 429."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("too many failed logins; try again later")
        self.retry_after = retry_after


class AuthServiceDown(Unauthorized):
    """The password could not be checked (Dovecot's auth did not answer): 503."""


class Throttle:
    """Failed logins per user name and per client address in a sliding window
    (a password guesser is slowed down whichever of the two it varies)."""

    def __init__(self, per_user: int = 5, per_address: int = 20, window: float = 900.0) -> None:
        self.limits = {"user": per_user, "address": per_address}
        self.window = window
        self._lock = threading.Lock()
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def wait(self, name: str, address: str) -> float:
        """Seconds until a login may be tried again (0: now)."""
        now = time.monotonic()
        worst = 0.0
        with self._lock:
            for key in (("user", name), ("address", address)):
                times = self._recent(key, now)
                if len(times) >= self.limits[key[0]]:
                    worst = max(worst, times[0] + self.window - now)
        return worst

    def failed(self, name: str, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > 100_000:
                self._failures.clear()
            for key in (("user", name), ("address", address)):
                self._recent(key, now).append(now)

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(("user", name), None)


def password_credential(user: User) -> str:
    """A password login's credential: the user and a fingerprint of the password
    hash, so a new password is a new credential (RFC 8620 §7.2)."""
    digest = hashlib.sha256(user.password_hash.encode("utf-8")).hexdigest()[:16]
    return f"basic:{user.name}:{digest}"


@dataclass
class Login:
    """The user directory, the app tokens and the throttle, as one gate."""

    users: Users
    tokens: TokenStore
    throttle: Throttle

    async def password(self, name: str, password: str, address: str, secured: bool) -> User:
        """The user if ``password`` is theirs; ``secured``: TLS or a loopback peer
        (Dovecot's idea of a secured connection, which its passdb may require)."""
        wait = self.throttle.wait(name, address)
        if wait > 0:
            log.warning("throttled password login for %r from %s", name, address)
            LOGINS.labels("throttled").inc()
            raise Throttled(wait)
        try:
            # argon2 is deliberately slow, Dovecot's auth is a socket: off the loop.
            user = await anyio.to_thread.run_sync(
                self.users.verify, name, password, address, secured
            )
        except AuthUnavailable as exc:
            log.error("cannot check the password of %r: %s", name, exc)
            LOGINS.labels("unavailable").inc()
            raise AuthServiceDown("the authentication service is unavailable") from exc
        if user is None:
            log.info("failed password login for %r from %s", name, address)
            LOGINS.labels("failed").inc()
            self.throttle.failed(name, address)
            raise Unauthorized("wrong user name or password")
        LOGINS.labels("ok").inc()
        self.throttle.succeeded(name)
        return user

    def token(self, token: str, address: str) -> tuple[User, str]:
        """The user an app token belongs to, and the token's credential."""
        info = self.tokens.check(token)
        user = self.users.get(info.user) if info is not None else None
        if info is None or user is None:
            log.info("rejected app token from %s", address)
            raise Unauthorized("unknown or revoked token")
        return user, f"token:{info.id}"

    def alive(self, credential: str) -> bool:
        """Whether a credential recorded earlier would still be accepted."""
        kind, _, rest = credential.partition(":")
        if kind == "basic":
            name = rest.rpartition(":")[0]
            user = self.users.get(name)
            return user is not None and password_credential(user) == credential
        if kind == "token":
            info = self.tokens.info(rest)
            return info is not None and info.user in self.users
        return False
