"""HTTP authentication: Basic (RFC 7617) with the users' passwords, Bearer app tokens.

Every JMAP route depends on ``authenticate``; a request without valid
credentials gets 401 with both challenges and a problem+json body.
"""

from __future__ import annotations

import base64
import binascii
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


async def authenticate(conn: HTTPConnection, users: UserDirectory, tokens: TokenStore) -> User:
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
        return user
    if scheme == "bearer":
        owner = tokens.verify(value.strip())
        user = users.get(owner) if owner is not None else None
        if user is None:
            log.info("rejected Bearer token from %s", _peer(conn))
            raise Unauthorized("unknown or revoked token")
        return user
    raise Unauthorized("authentication required")


def _peer(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else "?"
