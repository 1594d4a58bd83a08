"""App tokens for ``Authorization: Bearer`` (scripts and clients that only speak Bearer).

A token is ``mjt_<id>_<secret>``; the file keeps only a SHA-256 of the whole
token (the secret has 256 bits, so a fast hash is enough) next to its id, user,
label and creation time. The server re-reads the file when it changes, so
``token revoke`` takes effect without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from maildir_jmap.users import write_private_file

PREFIX = "mjt_"


@dataclass(frozen=True)
class TokenInfo:
    id: str
    user: str
    label: str
    created: int
    digest: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self._tokens: dict[str, TokenInfo] = {}

    def _load(self) -> dict[str, TokenInfo]:
        """The tokens on disk, re-read only when the file's mtime or size changed."""
        with self._lock:
            try:
                stat = self.path.stat()
            except FileNotFoundError:
                self._seen, self._tokens = None, {}
                return self._tokens
            signature = (stat.st_mtime_ns, stat.st_size)
            if signature != self._seen:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self._tokens = {t["id"]: TokenInfo(**t) for t in data.get("tokens", [])}
                self._seen = signature
            return self._tokens

    def _save(self, tokens: dict[str, TokenInfo]) -> None:
        body = {"tokens": [asdict(t) for t in tokens.values()]}
        write_private_file(self.path, json.dumps(body, indent=1).encode("utf-8"))

    def create(self, user: str, label: str = "") -> tuple[TokenInfo, str]:
        """A new token for ``user``; the secret is returned once and never stored."""
        tokens = dict(self._load())
        token_id = secrets.token_hex(4)
        while token_id in tokens:
            token_id = secrets.token_hex(4)
        token = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        info = TokenInfo(token_id, user, label, int(time.time()), _digest(token))
        tokens[token_id] = info
        self._save(tokens)
        return info, token

    def list(self, user: str | None = None) -> list[TokenInfo]:
        tokens = self._load().values()
        return sorted(
            (t for t in tokens if user is None or t.user == user), key=lambda t: t.created
        )

    def revoke(self, token_id: str) -> bool:
        tokens = dict(self._load())
        if tokens.pop(token_id, None) is None:
            return False
        self._save(tokens)
        return True

    def check(self, token: str) -> TokenInfo | None:
        """The record of a presented token, or None if it is not (or no longer) valid."""
        if not token.startswith(PREFIX):
            return None
        token_id = token[len(PREFIX) :].split("_", 1)[0]
        info = self._load().get(token_id)
        if info is None:
            return None
        if not hmac.compare_digest(info.digest, _digest(token)):
            return None
        return info

    def verify(self, token: str) -> str | None:
        """The user a presented token belongs to, or None."""
        info = self.check(token)
        return info.user if info is not None else None

    def info(self, token_id: str) -> TokenInfo | None:
        """The token with this id, if it still exists."""
        return self._load().get(token_id)
