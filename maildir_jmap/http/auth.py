"""HTTP authentication: Basic (RFC 7617) with the users' passwords, Bearer app tokens.

Every JMAP route depends on ``authenticate``; a request without valid
credentials gets 401 with both challenges and a problem+json body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import threading
import time
from collections import deque

import anyio.to_thread
from starlette.requests import HTTPConnection

from maildir_jmap.dovecot_auth import AuthUnavailable
from maildir_jmap.metrics import LOGINS
from maildir_jmap.tokens import TokenStore
from maildir_jmap.users import User, Users

log = logging.getLogger(__name__)

REALM = "maildir-jmap"
CHALLENGES = (f'Basic realm="{REALM}", charset="UTF-8"', f'Bearer realm="{REALM}"')


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


def _basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("malformed Basic credentials") from None
    name, sep, password = decoded.partition(":")
    if not sep:
        raise Unauthorized("malformed Basic credentials")
    return name, password


def password_credential(user: User) -> str:
    """A Basic login's credential: the user and a fingerprint of the password hash,
    so a new password is a new credential (RFC 8620 §7.2)."""
    digest = hashlib.sha256(user.password_hash.encode("utf-8")).hexdigest()[:16]
    return f"basic:{user.name}:{digest}"


def credential_of(conn: HTTPConnection) -> str:
    """The credential ``authenticate`` accepted for this connection."""
    credential: str = getattr(conn.state, "jmap_credential", "")
    return credential


def credential_alive(credential: str, users: Users, tokens: TokenStore) -> bool:
    """Whether a credential recorded earlier would still be accepted."""
    kind, _, rest = credential.partition(":")
    if kind == "basic":
        name = rest.rpartition(":")[0]
        user = users.get(name)
        return user is not None and password_credential(user) == credential
    if kind == "token":
        info = tokens.info(rest)
        return info is not None and info.user in users
    return False


def _secured(conn: HTTPConnection) -> bool:
    """TLS, or a loopback peer (a local proxy): Dovecot's idea of "secured"."""
    if conn.url.scheme in ("https", "wss"):
        return True
    return _peer(conn) in ("127.0.0.1", "::1")


async def authenticate(
    conn: HTTPConnection, users: Users, tokens: TokenStore, throttle: Throttle | None = None
) -> User:
    """The user whose credentials ``conn`` carries; also records which credential
    it was (``credential_of``)."""
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        name, password = _basic(value)
        address = _peer(conn)
        wait = throttle.wait(name, address) if throttle is not None else 0.0
        if wait > 0:
            log.warning("throttled Basic login for %r from %s", name, address)
            LOGINS.labels("throttled").inc()
            raise Throttled(wait)
        try:
            # argon2 is deliberately slow, Dovecot's auth is a socket: off the loop.
            user = await anyio.to_thread.run_sync(
                users.verify, name, password, address, _secured(conn)
            )
        except AuthUnavailable as exc:
            log.error("cannot check the password of %r: %s", name, exc)
            LOGINS.labels("unavailable").inc()
            raise AuthServiceDown("the authentication service is unavailable") from exc
        if user is None:
            log.info("failed Basic login for %r from %s", name, address)
            LOGINS.labels("failed").inc()
            if throttle is not None:
                throttle.failed(name, address)
            raise Unauthorized("wrong user name or password")
        LOGINS.labels("ok").inc()
        if throttle is not None:
            throttle.succeeded(name)
        conn.state.jmap_credential = password_credential(user)
        return user
    if scheme == "bearer":
        info = tokens.check(value.strip())
        user = users.get(info.user) if info is not None else None
        if info is None or user is None:
            log.info("rejected Bearer token from %s", _peer(conn))
            raise Unauthorized("unknown or revoked token")
        conn.state.jmap_credential = f"token:{info.id}"
        return user
    raise Unauthorized("authentication required")


def _peer(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else "?"
