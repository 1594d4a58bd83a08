"""Users: who may log in, with which password, and which Maildir is theirs.

Two sources give the same ``UserDirectory``: the embedded single-user mode (one
name and a password from the command line's sources) and a users file in TOML::

    [users."alice"]
    password = "$argon2id$v=19$m=65536,t=3,p=4$..."
    maildir = "/home/alice/Maildir"

Passwords are stored as argon2id hashes. Verifying one costs tens of
milliseconds by design, and JMAP clients send Basic credentials with every
request, so a successful check is remembered for a short while under a keyed
digest of the credentials (never the password itself).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from maildir_jmap.dovecot_config import UserMail
from maildir_jmap.durable import replace_file

log = logging.getLogger(__name__)

_HASHER = PasswordHasher()
_CACHE_SECONDS = 300.0


class UsersFileError(ValueError):
    """The users file cannot be read or has a bad entry."""


@dataclass(frozen=True)
class User:
    name: str
    maildir: Path
    password_hash: str
    addresses: tuple[str, ...] = ()
    """Addresses the user may send from (``*@domain`` for a whole domain); empty:
    the login itself when it is an address (RFC 8621 §6, Identity)."""
    home: Path | None = None
    """The user's home as Dovecot's userdb gives it (where Pigeonhole looks for
    their Sieve scripts); None when nobody said: the Maildir's parent stands in."""

    layout: str | None = None
    """The layout Dovecot's mail location names for this user (LAYOUT=), if any."""
    unusable: str | None = None
    """Why this user's mail cannot be served (a mail location we refuse), if so."""
    dovecot: UserMail | None = None
    """What Dovecot's config and userdb say for this user: Sieve location, quota,
    listescape (dovecot_config.py); None for users Dovecot did not describe."""
    uid: int | None = None
    gid: int | None = None
    """The userdb's uid and gid (who owns the Maildir Dovecot creates)."""

    def home_dir(self) -> Path:
        return self.home if self.home is not None else self.maildir.parent


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def valid_username(name: str) -> bool:
    """Printable, no whitespace or ':' (the Basic auth separator), at most 255 bytes."""
    return (
        0 < len(name.encode("utf-8")) <= 255
        and name.isprintable()
        and not any(c.isspace() or c == ":" for c in name)
    )


class Users(Protocol):
    """Where users come from: the users file (UserDirectory) or Dovecot
    (dovecot_auth.DovecotUsers)."""

    def __contains__(self, name: str) -> bool: ...

    def get(self, name: str) -> User | None: ...

    def names(self) -> list[str]: ...

    def verify(
        self, name: str, password: str, remote: str | None = None, secured: bool = False
    ) -> User | None: ...

    def remembered(self, name: str, password: str) -> User | None:
        """The user if ``verify`` accepted this password for them moments ago
        (``LoginCache``), else None; touches neither a hash nor a socket, so the
        event loop may call it (``verify`` it may not)."""
        ...

    def refresh(self, force: bool = False) -> bool:
        """Re-read where the users come from if it changed (``force``: anyway);
        whether it was re-read."""
        ...

    def ready(self) -> str | None:
        """Why logins cannot be checked right now, or None (readiness)."""
        ...

    def route_fields(self, name: str) -> dict[str, str]:
        """What the user database says about which backend serves ``name``
        (Dovecot's passdb ``host``/``port``); empty when it says nothing."""
        ...


class LoginCache:
    """Recently verified (name, password) pairs, keyed by an HMAC under a key that
    lives only in memory, so Basic auth on every request does not pay a full
    verification each time."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._verified: dict[bytes, float] = {}

    def _digest(self, name: str, password: str) -> bytes:
        message = name.encode("utf-8") + b"\0" + password.encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def fresh(self, name: str, password: str) -> bool:
        expires = self._verified.get(self._digest(name, password))
        return expires is not None and expires > time.monotonic()

    def remember(self, name: str, password: str) -> None:
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[self._digest(name, password)] = time.monotonic() + _CACHE_SECONDS

    def clear(self) -> None:
        self._verified.clear()


class UserDirectory:
    """Looks up users and verifies passwords (thread-safe for reads)."""

    def __init__(self, users: dict[str, User]) -> None:
        self._users = dict(users)
        self._logins = LoginCache()
        # A dummy hash so that an unknown user costs as much as a wrong password.
        self._dummy = hash_password(secrets.token_urlsafe(16))

    def __contains__(self, name: str) -> bool:
        return name in self._users

    def refresh(self, force: bool = False) -> bool:
        return False

    def ready(self) -> str | None:
        return None

    def route_fields(self, name: str) -> dict[str, str]:
        return {}  # the users file pins nobody: the consistent hash decides

    def replace(self, users: dict[str, User]) -> None:
        """Serve ``users`` from now on; what was verified before is verified again."""
        self._users = dict(users)
        self._logins.clear()

    def get(self, name: str) -> User | None:
        return self._users.get(name)

    def names(self) -> list[str]:
        return sorted(self._users)

    def remembered(self, name: str, password: str) -> User | None:
        user = self._users.get(name)
        return user if user is not None and self._logins.fresh(name, password) else None

    def verify(
        self, name: str, password: str, remote: str | None = None, secured: bool = False
    ) -> User | None:
        """The user if ``password`` is theirs, else None. Constant-time in the hash
        comparison, and an unknown name costs a full argon2 verification too."""
        user = self._users.get(name)
        if user is not None and self._logins.fresh(name, password):
            return user
        try:
            _HASHER.verify(user.password_hash if user else self._dummy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if user is None:
            return None
        self._logins.remember(name, password)
        return user


class UsersFile(UserDirectory):
    """The users file, re-read when it changes (``user add`` while the server runs
    takes effect within a second; SIGHUP re-reads it too). A file that no longer
    parses keeps the users it had, with an error in the log."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._problem = ""
        """Why the last re-read failed (readiness says so), or ""."""
        self._signature = self._stat()
        super().__init__(load_users_file(path))

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            info = self.path.stat()
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def ready(self) -> str | None:
        if self._problem:
            return (
                f"the users file cannot be read (serving the users loaded before): {self._problem}"
            )
        return None

    def refresh(self, force: bool = False) -> bool:
        signature = self._stat()
        if signature == self._signature and not force:
            return False
        self._signature = signature
        try:
            users = load_users_file(self.path)
        except UsersFileError as exc:
            log.error("keeping the users loaded before: %s", exc)
            self._problem = str(exc)
            return False
        self._problem = ""
        self.replace(users)
        log.info("re-read %s: %d users", self.path, len(users))
        return True


def load_users_file(path: Path) -> dict[str, User]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsersFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsersFileError(f"{path}: {exc}") from None
    table = data.get("users", {})
    if not isinstance(table, dict):
        raise UsersFileError(f"{path}: 'users' must be a table")
    users: dict[str, User] = {}
    for name, entry in table.items():
        if not valid_username(name):
            raise UsersFileError(f"{path}: invalid user name {name!r}")
        if not isinstance(entry, dict):
            raise UsersFileError(f"{path}: users.{name} must be a table")
        password, maildir = entry.get("password"), entry.get("maildir")
        if not isinstance(password, str) or not password.startswith("$argon2"):
            raise UsersFileError(f"{path}: users.{name}.password must be an argon2 hash")
        if not isinstance(maildir, str) or not maildir:
            raise UsersFileError(f"{path}: users.{name}.maildir must be a path")
        addresses = entry.get("addresses", [])
        if not isinstance(addresses, list) or not all(
            isinstance(a, str) and "@" in a for a in addresses
        ):
            raise UsersFileError(f"{path}: users.{name}.addresses must be a list of addresses")
        users[name] = User(name, Path(maildir), password, tuple(addresses))
    return users


def _toml_string(text: str) -> str:
    # JSON string escapes (\" \\ \n \uXXXX ...) are all valid TOML basic-string escapes.
    return json.dumps(text, ensure_ascii=False)


def save_users_file(path: Path, users: dict[str, User]) -> None:
    """Write the users file atomically (tmp, fsync, rename), readable by owner only."""
    lines = ["# maildir-jmap users: written by `maildir-jmap user add`", ""]
    for name in sorted(users):
        user = users[name]
        lines += [
            f"[users.{_toml_string(name)}]",
            f"password = {_toml_string(user.password_hash)}",
            f"maildir = {_toml_string(str(user.maildir))}",
        ]
        if user.addresses:
            lines.append(f"addresses = [{', '.join(_toml_string(a) for a in user.addresses)}]")
        lines += [
            "",
        ]
    write_private_file(path, "\n".join(lines).encode("utf-8"))


def write_private_file(path: Path, content: bytes) -> None:
    """Atomically replace ``path`` with ``content``, mode 0600."""
    replace_file(path, content, mode=0o600)
