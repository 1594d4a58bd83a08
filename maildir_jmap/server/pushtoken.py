"""Short-lived signed tokens for EventSource (RFC 8620 §7.3) in browsers.

A browser's ``EventSource`` cannot send an Authorization header, so an
authenticated ``POST /jmap/push-token`` issues a token scoped to push for the
caller's accounts, valid for a few minutes, in the response body and as an
HttpOnly cookie limited to the event-source path. The event-source endpoint
accepts it from ``?access_token=`` or that cookie; no other endpoint does.
The signing key lives in the state directory, so tokens survive a restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from pathlib import Path

import orjson

from maildir_jmap.users import write_private_file

SCOPE = "push"
LIFETIME = 300  # seconds
COOKIE = "jmap_push"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PushTokens:
    def __init__(self, key_file: Path) -> None:
        try:
            key = key_file.read_bytes()
        except FileNotFoundError:
            key = b""
        if len(key) < 32:
            key = secrets.token_bytes(32)
            write_private_file(key_file, key)
        self._key = key

    def _sign(self, payload: bytes) -> str:
        return _b64(hmac.new(self._key, payload, hashlib.sha256).digest())

    def issue(
        self, username: str, account_ids: list[str], lifetime: int = LIFETIME
    ) -> tuple[str, int]:
        expires = int(time.time()) + lifetime
        payload = orjson.dumps({"u": username, "a": account_ids, "s": SCOPE, "exp": expires})
        return f"{_b64(payload)}.{self._sign(payload)}", expires

    def verify(self, token: str) -> str | None:
        """The user a valid, unexpired push token was issued to, else None."""
        body, sep, signature = token.partition(".")
        if not sep:
            return None
        try:
            payload = _unb64(body)
        except (ValueError, TypeError):
            return None
        if not hmac.compare_digest(self._sign(payload), signature):
            return None
        try:
            claims = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(claims, dict) or claims.get("s") != SCOPE:
            return None
        expires = claims.get("exp")
        if not isinstance(expires, int) or expires < time.time():
            return None
        user = claims.get("u")
        return user if isinstance(user, str) else None
