"""PushSubscription records (RFC 8620 §7.2): who registered which URL, with which
keys, and whether it has been verified; kept across restarts.

Each subscription belongs to the credential that created it (§7.2: "tied to the
credentials used to authenticate the API request"): a Basic login is named by the
user and a fingerprint of their password hash (a new password is a new
credential), an app token by its id. ``prune`` destroys subscriptions whose
credential is gone, whose expiry has passed, or that were made under an earlier
VAPID key (RFC 9749 §5: push services bind endpoints to the key).

The file ``push-subscriptions.json`` in the state directory is replaced
atomically (tmp, fsync, rename) on every change; destroying a subscription
rewrites it without the URL and keys (§7.2 asks they be erased).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from maildir_jmap.durable import replace_file

log = logging.getLogger(__name__)

FILE_NAME = "push-subscriptions.json"
MAX_PER_CREDENTIAL = 50
MAX_URL_LENGTH = 2048


@dataclass(frozen=True)
class Subscription:
    id: str
    user: str
    credential: str
    device_client_id: str
    url: str
    keys: dict[str, str] | None
    expires: int
    """Seconds since the epoch; never null here: the server always sets one (§7.2)."""
    types: list[str] | None
    server_code: str
    """The verification code we sent in the PushVerification."""
    client_code: str | None = None
    """What the client set; equal to ``server_code`` once verified."""
    vapid_key: str = ""
    """The application server key the subscription was made under."""

    @property
    def verified(self) -> bool:
        return self.client_code is not None and secrets.compare_digest(
            self.client_code, self.server_code
        )


def url_problem(url: str, *, allow_private: bool, allow_http: bool) -> str | None:
    """Why the server will not POST to ``url``, or None. §7.2 says the URL MUST
    begin with https://; §8.6 warns of requests to internal hosts: literal
    loopback, private, link-local and other non-global addresses are refused here,
    names that resolve to them when connecting (sync/webpush.py)."""
    if len(url) > MAX_URL_LENGTH:
        return f"url is longer than {MAX_URL_LENGTH} characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "url is not a valid URL"
    if parts.scheme != "https" and not (allow_http and parts.scheme == "http"):
        return "url must begin with https://"
    host = parts.hostname
    if not host or parts.username is not None or parts.password is not None:
        return "url must name a host and carry no credentials"
    if port == 0 or any(c.isspace() for c in url):
        return "url is not a valid URL"
    if allow_private:
        return None
    host = host.rstrip(".")  # "localhost." is localhost
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return "url must not point at this host or the local network"
    address = literal_address(host)
    if address is None:
        return None  # a name: its addresses are checked when connecting
    return None if address.is_global else "url must not point at a non-public address"


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``host`` spells, in any spelling a resolver accepts (issue 17):
    dotted quads, the shorthand and numeric forms inet_aton takes (``127.1``,
    ``0x7f000001``, ``2130706433``, ``0177.0.0.1``), IPv6, and IPv4 inside IPv6
    (``::ffff:127.0.0.1``) as the IPv4 address it is."""
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        if not host or any(c not in "0123456789abcdefx." for c in host.lower()):
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return embedded
        if address.teredo is not None:
            return address.teredo[1]
    return address


def new_code() -> str:
    """§7.2.2: enough entropy that a client cannot guess it (128 bits)."""
    return secrets.token_hex(16)


@dataclass
class SubscriptionStore:
    path: Path
    vapid_key: str
    credential_alive: Callable[[str], bool] = lambda credential: True
    on_change: list[Callable[[Subscription | None, str], None]] = field(default_factory=list)
    """Called with (subscription or None if destroyed, id) after each change."""
    copy_of: Callable[[str], Path | None] = lambda user: None
    """Where a user's own copy of their subscriptions lives (their account state,
    ``mail.account_state``), so the subscriptions move with them to another
    backend; None: only this store's file."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _copy_lock: threading.Lock = field(default_factory=threading.Lock)
    """Held while a user's copy is written, outside ``_lock``: finding the copy
    may ask Dovecot's userdb and passdb, which reads must not wait for."""
    _subs: dict[str, Subscription] = field(default_factory=dict)

    @classmethod
    def open(
        cls, state_dir: Path, vapid_key: str, credential_alive: Callable[[str], bool]
    ) -> SubscriptionStore:
        store = cls(state_dir / FILE_NAME, vapid_key, credential_alive)
        try:
            data = json.loads(store.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = {"subscriptions": []}
        for raw in data.get("subscriptions", []):
            sub = Subscription(**raw)
            store._subs[sub.id] = sub
        return store

    def _save(self) -> None:
        """This store's file; call with ``_lock`` held."""
        _write(self.path, list(self._subs.values()))

    def _save_copy(self, user: str) -> None:
        """The user's own copy, from what this store holds of them now (after the
        change that called it, so the last writer writes the newest)."""
        with self._copy_lock:
            copy = self.copy_of(user)
            if copy is not None:
                _write(copy, [s for s in self.all() if s.user == user])

    def adopt(self, user: str) -> int:
        """Take ``user``'s subscriptions from their own copy when there is one (they
        may have moved here from another backend): it replaces what this store had
        of them. How many they have now."""
        copy = self.copy_of(user)
        if copy is None:
            return len([s for s in self.all() if s.user == user])
        try:
            data = json.loads(copy.read_text(encoding="utf-8"))
            theirs = [Subscription(**raw) for raw in data.get("subscriptions", [])]
        except FileNotFoundError:
            self._save_copy(user)  # the first copy, from what this backend had
            return len([s for s in self.all() if s.user == user])
        except (OSError, ValueError, TypeError):
            log.exception("unreadable push subscriptions of %s in %s; keeping ours", user, copy)
            return len([s for s in self.all() if s.user == user])
        theirs = [s for s in theirs if s.user == user]
        with self._lock:
            gone = [i for i, s in self._subs.items() if s.user == user]
            for sub_id in gone:
                del self._subs[sub_id]
            self._subs.update((s.id, s) for s in theirs)
            self._save()
        for sub_id in set(gone) - {s.id for s in theirs}:
            self._notify(None, sub_id)
        for sub in theirs:
            self._notify(sub, sub.id)
        return len(theirs)

    def _notify(self, sub: Subscription | None, sub_id: str) -> None:
        for callback in self.on_change:
            try:
                callback(sub, sub_id)
            except Exception:
                log.exception("push subscription listener failed")

    def get(self, sub_id: str) -> Subscription | None:
        with self._lock:
            return self._subs.get(sub_id)

    def of_credential(self, credential: str) -> list[Subscription]:
        with self._lock:
            return [s for s in self._subs.values() if s.credential == credential]

    def all(self) -> list[Subscription]:
        with self._lock:
            return list(self._subs.values())

    def create(self, **values: Any) -> Subscription:
        """A new subscription with a fresh id and verification code, saved before
        anything is sent to its URL."""
        with self._lock:
            sub_id = "S" + secrets.token_hex(12)
            sub = Subscription(
                id=sub_id, server_code=new_code(), vapid_key=self.vapid_key, **values
            )
            self._subs[sub_id] = sub
            self._save()
        self._save_copy(sub.user)
        self._notify(sub, sub_id)
        return sub

    def update(self, sub_id: str, **changes: Any) -> Subscription | None:
        with self._lock:
            sub = self._subs.get(sub_id)
            if sub is None:
                return None
            sub = replace(sub, **changes)
            self._subs[sub_id] = sub
            self._save()
        self._save_copy(sub.user)
        self._notify(sub, sub_id)
        return sub

    def destroy(self, sub_id: str) -> bool:
        with self._lock:
            sub = self._subs.pop(sub_id, None)
            if sub is None:
                return False
            self._save()
        self._save_copy(sub.user)
        self._notify(None, sub_id)
        return True

    def prune(self, now: float) -> list[str]:
        """Destroy expired subscriptions, those of revoked credentials and those
        made under another VAPID key; return their ids."""
        gone = [
            s.id
            for s in self.all()
            if s.expires <= now
            or s.vapid_key != self.vapid_key
            or not self.credential_alive(s.credential)
        ]
        for sub_id in gone:
            self.destroy(sub_id)
        if gone:
            log.info("dropped %d push subscriptions (expired or revoked)", len(gone))
        return gone


def _write(path: Path, subscriptions: list[Subscription]) -> None:
    body = {"subscriptions": [asdict(s) for s in subscriptions]}
    replace_file(path, json.dumps(body, indent=1).encode("utf-8"))
