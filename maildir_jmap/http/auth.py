"""HTTP authentication: Basic (RFC 7617) with the users' passwords, Bearer app tokens.

This module reads the Authorization header and the peer; checking what it found
is the server room's (server/login.py). Every JMAP route depends on
``authenticate``; a request without valid credentials gets 401 with both
challenges and a problem+json body.
"""

from __future__ import annotations

import base64
import binascii

from starlette.requests import HTTPConnection

from maildir_jmap.server.login import Login, Unauthorized, password_credential
from maildir_jmap.users import User

REALM = "maildir-jmap"
CHALLENGES = (f'Basic realm="{REALM}", charset="UTF-8"', f'Bearer realm="{REALM}"')


def _basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("malformed Basic credentials") from None
    name, sep, password = decoded.partition(":")
    if not sep:
        raise Unauthorized("malformed Basic credentials")
    return name, password


def credential_of(conn: HTTPConnection) -> str:
    """The credential ``authenticate`` accepted for this connection."""
    credential: str = getattr(conn.state, "jmap_credential", "")
    return credential


def _secured(conn: HTTPConnection) -> bool:
    """TLS, or a loopback peer (a local proxy): Dovecot's idea of "secured"."""
    if conn.scope.get("scheme") in ("https", "wss"):  # what conn.url reads, unbuilt
        return True
    return peer(conn) in ("127.0.0.1", "::1")


async def authenticate(conn: HTTPConnection, login: Login) -> User:
    """The user whose credentials ``conn`` carries; also records which credential
    it was (``credential_of``)."""
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        name, password = _basic(value)
        user = await login.password(name, password, peer(conn), _secured(conn))
        conn.state.jmap_credential = password_credential(user)
        return user
    if scheme == "bearer":
        user, credential = login.token(value.strip(), peer(conn))
        conn.state.jmap_credential = credential
        return user
    raise Unauthorized("authentication required")


def basic_login(conn: HTTPConnection) -> str | None:
    """The user name a Basic Authorization header gives, unchecked (for routing a
    request whose credentials the backend checks), or None."""
    scheme, _, value = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return _basic(value)[0]
    except Unauthorized:
        return None


def peer(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else "?"
