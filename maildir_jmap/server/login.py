"""Who is asking: password and token checks, failed-login throttling, and whether
a credential recorded earlier still holds. No HTTP here: http/auth.py reads the
Authorization header and hands the parts to ``Login``."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import anyio
import anyio.to_thread

from maildir_jmap.dovecot_auth import AuthUnavailable
from maildir_jmap.metrics import LOGINS
from maildir_jmap.server.throttle import Refused, Throttle
from maildir_jmap.tokens import TokenStore
from maildir_jmap.users import User, Users

log = logging.getLogger(__name__)


class Unauthorized(Exception):
    """No credentials, or credentials that do not check out."""


class Throttled(Unauthorized):
    """Too many failed logins from this address: 429 (server/throttle.py)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("too many failed logins; try again later")
        self.retry_after = retry_after


class AuthServiceDown(Unauthorized):
    """The password could not be checked (Dovecot's auth did not answer): 503."""


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
        try:
            hold = self.throttle.before(address)
        except Refused as exc:
            log.warning("refused password login for %r from %s: it keeps failing", name, address)
            LOGINS.labels("throttled").inc()
            raise Throttled(exc.retry_after) from None
        if hold > 0:
            await anyio.sleep(hold)  # Dovecot's auth penalty: held, then checked
        known = self.users.remembered(name, password)
        if known is not None:  # Basic auth on every request: no thread hop, no hash
            LOGINS.labels("ok").inc()
            self.throttle.succeeded(address)
            return known
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
            held = self.throttle.failed(name, address, password)
            if held > 0:
                await anyio.sleep(held)  # many failures for this name: slow answers
            raise Unauthorized("wrong user name or password")
        LOGINS.labels("ok").inc()
        self.throttle.succeeded(address)
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
        if kind == "user":  # a push token's stream: as long as the user exists
            return rest in self.users
        return False
