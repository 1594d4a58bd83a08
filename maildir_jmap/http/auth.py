"""HTTP authentication: Basic (RFC 7617) with the users' passwords, Bearer app tokens.

Every JMAP route depends on ``authenticate``; a request without valid
credentials gets 401 with both challenges and a problem+json body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging

import anyio.to_thread
from starlette.requests import HTTPConnection

from maildir_jmap.tokens import TokenStore
from maildir_jmap.users import User, UserDirectory

log = logging.getLogger(__name__)

REALM = "maildir-jmap"
CHALLENGES = (f'Basic realm="{REALM}", charset="UTF-8"', f'Bearer realm="{REALM}"')


class Unauthorized(Exception):
    """No credentials, or credentials that do not check out."""


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


def credential_alive(credential: str, users: UserDirectory, tokens: TokenStore) -> bool:
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


async def authenticate(conn: HTTPConnection, users: UserDirectory, tokens: TokenStore) -> User:
    """The user whose credentials ``conn`` carries; also records which credential
    it was (``credential_of``)."""
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        name, password = _basic(value)
        # argon2 is deliberately slow: keep it off the event loop.
        user = await anyio.to_thread.run_sync(users.verify, name, password)
        if user is None:
            log.info("failed Basic login for %r from %s", name, _peer(conn))
            raise Unauthorized("wrong user name or password")
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
