"""Users from Dovecot itself: passwords checked by its auth service, homes and
mail locations from its userdb, so the same logins work for IMAP and JMAP.

Two line protocols over Unix sockets (Dovecot's "auth protocol" docs):

- ``auth-client``: the handshake (VERSION 1.x and our CPID; the server sends
  VERSION, SPID, CUID, COOKIE, its MECHs and DONE), then
  ``AUTH <id> PLAIN service=jmap [secured] rip=<ip> resp=<base64>`` answered by
  ``OK <id> user=<name>`` or ``FAIL <id> ...``.
- ``auth-userdb`` (the master protocol): ``VERSION 1 0`` then
  ``USER <id> <name> service=jmap``, answered by ``USER <id> <name> home=...
  mail=...`` or ``NOTFOUND <id>`` / ``FAIL <id>``.

Values use Dovecot's tab-escaping (\\001 then 0/1/t/r/n). Each call opens a
fresh connection (a few hundred microseconds; logins are cached by the caller).
Any protocol or socket trouble is ``AuthUnavailable``, which the HTTP layer
answers with 503: a Dovecot restart must not look like a wrong password.
"""

from __future__ import annotations

import base64
import grp
import logging
import os
import pwd
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from maildir_jmap.config import Config
from maildir_jmap.dovecot_config import DovecotConfig
from maildir_jmap.users import LoginCache, User, valid_username

log = logging.getLogger(__name__)

TIMEOUT = 20.0
"""Dovecot delays failed logins (auth_failure_delay, growing per client address)."""
USERDB_CACHE_SECONDS = 60.0
ROUTE_FIELDS = ("host", "port")
_ESCAPES = {"0": "\0", "1": "\001", "t": "\t", "r": "\r", "n": "\n"}


class AuthUnavailable(Exception):
    """Dovecot's auth service did not answer as expected."""


def escape(value: str) -> str:
    return (
        value.replace("\001", "\0011")
        .replace("\0", "\0010")
        .replace("\t", "\001t")
        .replace("\r", "\001r")
        .replace("\n", "\001n")
    )


def unescape(value: str) -> str:
    return re.sub("\001(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), value)


def _fields(line: str) -> tuple[list[str], dict[str, str]]:
    """A reply line: its positional parameters and its name=value options."""
    parts = [unescape(p) for p in line.split("\t")]
    positional: list[str] = []
    options: dict[str, str] = {}
    for part in parts:
        name, eq, value = part.partition("=")
        if eq and re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            options[name] = value
        else:
            positional.append(part)
    return positional, options


class _Connection:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        try:
            self.sock.connect(str(path))
        except OSError as exc:
            self.sock.close()
            raise AuthUnavailable(f"cannot connect to {path}: {exc}") from exc
        self.buffer = b""

    def send(self, *lines: str) -> None:
        try:
            self.sock.sendall("".join(line + "\n" for line in lines).encode("utf-8"))
        except OSError as exc:
            raise AuthUnavailable(str(exc)) from exc

    def line(self) -> str:
        while b"\n" not in self.buffer:
            try:
                chunk = self.sock.recv(65536)
            except OSError as exc:
                raise AuthUnavailable(str(exc)) from exc
            if not chunk:
                raise AuthUnavailable("Dovecot auth closed the connection")
            self.buffer += chunk
            if len(self.buffer) > 1 << 20:
                raise AuthUnavailable("reply too long")
        raw, _, self.buffer = self.buffer.partition(b"\n")
        return raw.decode("utf-8", errors="replace")

    def close(self) -> None:
        self.sock.close()


@dataclass(frozen=True)
class Passdb:
    """Password checks through ``auth-client``."""

    socket_path: Path
    service: str = "jmap"

    def authenticate(
        self, name: str, password: str, *, remote: str | None = None, secured: bool = False
    ) -> str | None:
        """The canonical user name if Dovecot accepts the password, else None."""
        connection = _Connection(self.socket_path)
        try:
            connection.send("VERSION\t1\t2", f"CPID\t{os.getpid()}")
            while True:
                fields, _ = _fields(connection.line())
                if fields[0] == "VERSION" and (len(fields) < 2 or fields[1] != "1"):
                    raise AuthUnavailable(f"unsupported auth protocol {fields[1:]}")
                if fields[0] == "DONE":
                    break
            response = base64.b64encode(f"\0{name}\0{password}".encode()).decode("ascii")
            options = [f"service={escape(self.service)}"]
            if secured:
                options.append("secured")
            if remote:
                options.append(f"rip={escape(remote)}")
            connection.send("\t".join(["AUTH", "1", "PLAIN", *options, f"resp={response}"]))
            fields, values = _fields(connection.line())
            if fields[:2] == ["OK", "1"]:
                return values.get("user", name)
            if fields[:2] == ["FAIL", "1"]:
                if values.get("code") == "temp_fail" or "temp" in values:
                    raise AuthUnavailable(values.get("reason", "temporary failure"))
                return None
            raise AuthUnavailable(f"unexpected reply {fields[:1]}")
        finally:
            connection.close()

    def ping(self) -> None:
        """Raise AuthUnavailable unless the auth service completes a handshake."""
        connection = _Connection(self.socket_path)
        try:
            connection.send("VERSION\t1\t2", f"CPID\t{os.getpid()}")
            while _fields(connection.line())[0][0] != "DONE":
                pass
        finally:
            connection.close()


@dataclass(frozen=True)
class Userdb:
    """Home and mail location lookups through ``auth-userdb``."""

    socket_path: Path
    service: str = "jmap"

    def lookup(self, name: str) -> dict[str, str] | None:
        """The userdb's fields for ``name`` (``USER``), None if it has no such user."""
        return self._ask("USER", name)

    def passdb_fields(self, name: str) -> dict[str, str] | None:
        """The passdb's extra fields for ``name`` without a password (``PASS``, what
        ``doveadm auth lookup`` asks): where it routes the user (``host``, ``port``)."""
        return self._ask("PASS", name)

    def _ask(self, command: str, name: str) -> dict[str, str] | None:
        connection = _Connection(self.socket_path)
        try:
            connection.send(
                "VERSION\t1\t0", f"{command}\t1\t{escape(name)}\tservice={escape(self.service)}"
            )
            while True:
                fields, values = _fields(connection.line())
                if fields[0] in ("VERSION", "SPID"):
                    continue
                if fields[:2] == [command, "1"]:
                    return {"user": fields[2] if len(fields) > 2 else name, **values}
                if fields[:2] == ["NOTFOUND", "1"]:
                    return None
                if fields[:2] == ["FAIL", "1"]:
                    raise AuthUnavailable(values.get("reason", f"{command} lookup failed"))
                raise AuthUnavailable(f"unexpected reply {fields[:1]}")
        finally:
            connection.close()


class DovecotUsers:
    """A user directory backed by Dovecot (the same interface as UserDirectory)."""

    def __init__(
        self,
        passdb: Passdb,
        userdb: Userdb,
        mail_location: str | None = None,
        dovecot: DovecotConfig | None = None,
    ) -> None:
        self.passdb = passdb
        self.userdb = userdb
        self.mail_location = mail_location
        """Our own config's fallback when neither the userdb nor Dovecot's config has one."""
        self.dovecot = dovecot or DovecotConfig()
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, User | None]] = {}
        self._logins = LoginCache()

    def names(self) -> list[str]:
        """Dovecot does not list its users here: accounts open on first login."""
        return []

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def ready(self) -> str | None:
        """Why Dovecot's auth does not answer, or None (readiness)."""
        try:
            self.passdb.ping()
            self.userdb.lookup("maildir-jmap-readiness-probe")
        except AuthUnavailable as exc:
            return f"Dovecot's auth does not answer: {exc}"
        return None

    def route_fields(self, name: str) -> dict[str, str]:
        """The passdb's ``host`` and ``port`` for ``name`` (nothing else of the
        reply, which may carry the password hash, leaves this method)."""
        fields = self.userdb.passdb_fields(name) or {}
        return {key: fields[key] for key in ROUTE_FIELDS if fields.get(key)}

    def refresh(self, force: bool = False) -> bool:
        if force:  # a reload: ask Dovecot's userdb afresh
            with self._lock:
                self._cache.clear()
        return False

    def remembered(self, name: str, password: str) -> User | None:
        """A password Dovecot's passdb accepted moments ago, for a user its userdb
        answered for moments ago: both from memory, or None."""
        if not self._logins.fresh(name, password):
            return None
        with self._lock:
            cached = self._cache.get(name)
        return cached[1] if cached is not None and cached[0] > time.monotonic() else None

    def get(self, name: str) -> User | None:
        if not valid_username(name):
            return None
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(name)
            if cached is not None and cached[0] > now:
                return cached[1]
        fields = self.userdb.lookup(name)
        user = self._user(name, fields) if fields is not None else None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[name] = (now + USERDB_CACHE_SECONDS, user)
        return user

    def _user(self, name: str, fields: dict[str, str]) -> User | None:
        mail = self.dovecot.for_user({"user": name, **fields}, self.mail_location)
        login = mail.login or name
        uid, gid = _uid(fields.get("uid")), _gid(fields.get("gid"))
        if mail.unusable is not None:
            # They log in, and their requests get 503 with the reason (never a guess).
            log.error("the mail of %s cannot be served: %s", name, mail.unusable)
            return User(login, mail.maildir or Path("/nonexistent"), "", unusable=mail.unusable)
        if mail.maildir is None:
            log.warning("userdb gives %s no Maildir location; set Dovecot's mail_location", name)
            return None
        if mail.home is None:
            log.warning("userdb gives %s no home; {home} is the Maildir's parent", name)
        return User(
            login, mail.maildir, "", home=mail.home, layout=mail.layout, dovecot=mail,
            uid=uid, gid=gid,
        )  # fmt: skip

    def verify(
        self, name: str, password: str, remote: str | None = None, secured: bool = False
    ) -> User | None:
        if not valid_username(name) or not password:
            return None
        if self._logins.fresh(name, password):
            return self.get(name)
        canonical = self.passdb.authenticate(name, password, remote=remote, secured=secured)
        user = self.get(canonical) if canonical is not None else None
        if user is not None and canonical == name:
            self._logins.remember(name, password)
        return user


def _uid(value: str | None) -> int | None:
    """A userdb uid: a number, or a user name the system knows."""
    if value and not value.isdigit():
        try:
            return pwd.getpwnam(value).pw_uid
        except KeyError:
            return None
    return int(value) if value else None


def _gid(value: str | None) -> int | None:
    """A userdb gid: a number, or a group name the system knows."""
    if value and not value.isdigit():
        try:
            return grp.getgrnam(value).gr_gid
        except KeyError:
            return None
    return int(value) if value else None


def auth_sockets(config: Config, dovecot: DovecotConfig | None) -> tuple[Path, Path]:
    """Dovecot's auth-client and auth-userdb sockets: ours if the config names
    them, else under Dovecot's own ``base_dir``."""
    base = dovecot.base_dir if dovecot is not None else DovecotConfig().base_dir
    return (
        config.dovecot_auth_socket or base / "auth-client",
        config.dovecot_userdb_socket or base / "auth-userdb",
    )
