"""The open accounts of a many-user server.

An account opens on first use, each user under a lock of their own, so a large
Maildir being indexed for one user never holds up another's requests; a Maildir
that cannot be opened fails only its own user's requests (``AccountUnavailable``,
answered 503). Accounts nobody used for ``idle_close`` seconds, with no push
listener, verified push subscription or queued send, are closed (watcher
stopped, journal flushed) and reopen on the next request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from maildir_jmap.config import Config
from maildir_jmap.dovecot_config import UserMail
from maildir_jmap.progress import progress_line
from maildir_jmap.server import policy
from maildir_jmap.store import folders
from maildir_jmap.store.account import Account
from maildir_jmap.store.names import LAYOUTS
from maildir_jmap.store.owner import AccountOwned
from maildir_jmap.sync.watcher import Watcher
from maildir_jmap.users import User

log = logging.getLogger(__name__)


class LoggedProgress:
    """A first index of a large Maildir says how it goes, every 10 s at most
    (issue 17: a silent start of minutes looked hung)."""

    def __init__(self, name: str, every: float = 10.0) -> None:
        self.name = name
        self.every = every
        self.started = time.monotonic()
        self.last = self.started

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < self.every and done < total:
            return
        if done == total and now - self.started < self.every:
            return  # small or quick: the "opened account" line is enough
        self.last = now
        log.info("indexing %s: %s", self.name, progress_line(done, total, now - self.started))


class AccountUnavailable(Exception):
    """This user's Maildir cannot be opened right now."""


@dataclass
class AccountPool:
    config: Config
    prepare: Callable[[User, Account], None]
    """Wires a freshly opened account into the app (listeners, addresses, ...)."""
    roles: dict[str, str] | None = None
    """Top-level folder -> role for folders first seen (None: the well-known names)."""
    autocreate: dict[str, bool] = field(default_factory=dict)
    """Folders Dovecot's config creates by itself -> subscribed too."""
    mail_of: Callable[[User], UserMail | None] = lambda user: None
    """What Dovecot says about a user (listescape, ...), if anything."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _accounts: dict[str, Account] = field(default_factory=dict)
    _watchers: dict[str, Watcher] = field(default_factory=dict)
    _used: dict[str, float] = field(default_factory=dict)
    _opening: dict[str, threading.Lock] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    """Users whose account could not be opened the last time it was tried, and why
    (readiness reports them; a later successful open clears the entry)."""

    def is_open(self, name: str) -> bool:
        with self._lock:
            return name in self._accounts

    def get(self, user: User) -> Account:
        with self._lock:
            account = self._accounts.get(user.name)
            self._used[user.name] = time.monotonic()
            if account is not None:
                return account
            opening = self._opening.setdefault(user.name, threading.Lock())
        with opening:
            with self._lock:
                account = self._accounts.get(user.name)
            if account is not None:
                return account
            try:
                account = self._open(user)
            except AccountUnavailable as exc:
                with self._lock:
                    self.failures[user.name] = str(exc)
                raise
            with self._lock:
                self.failures.pop(user.name, None)
                self._accounts[user.name] = account
                self._used[user.name] = time.monotonic()
            return account

    def _open(self, user: User) -> Account:
        if user.unusable is not None:
            raise AccountUnavailable(
                f"the mailbox of {user.name} cannot be served: {user.unusable}"
            )
        mail = self.mail_of(user)
        if user.dovecot is not None and not user.maildir.exists():
            # Never logged in over IMAP, nothing delivered yet: Dovecot would make
            # the Maildir now, with its autocreated folders (below).
            try:
                folders.create_root(user.maildir, user.uid, user.gid)
                log.info("created the Maildir of %s at %s", user.name, user.maildir)
            except OSError as exc:
                raise AccountUnavailable(
                    f"the Maildir of {user.name} does not exist and cannot be created: {exc}"
                ) from exc
        state_dir = policy.account_state_dir(self.config, user)
        if state_dir is not None and state_dir.resolve().is_relative_to(user.maildir.resolve()):
            raise AccountUnavailable(
                f"mail.account_state puts the state of {user.name} inside their Maildir"
            )
        try:
            account = Account.open(
                user.name,
                user.maildir,
                self.config.state_dir,
                state_dir=state_dir,
                layout=LAYOUTS.get(user.layout or self.config.layout),
                roles=self.roles,
                upload_expiry=self.config.upload_expiry,
                escape=mail.escape if mail is not None else None,
                progress=LoggedProgress(user.name),
            )
        except AccountOwned as exc:  # routed wrong, or moving: 503, never served twice
            log.warning("not serving %s: %s", user.name, exc)
            raise AccountUnavailable(
                f"the account of {user.name} is served by another process right now"
            ) from exc
        except Exception as exc:
            log.exception("cannot open the account of %s at %s", user.name, user.maildir)
            raise AccountUnavailable(f"the mailbox of {user.name} cannot be opened") from exc
        try:
            if folders.autocreate(account.maildir, account.layout, self.autocreate):
                account.rescan()
        except OSError as exc:  # the account still opens; Dovecot creates them anyway
            log.warning("cannot create Dovecot's autocreate folders for %s: %s", user.name, exc)
        self.prepare(user, account)
        if self.config.watch:
            self._watchers[user.name] = Watcher(
                account, rescan_every=self.config.rescan_interval
            ).start()
        log.info("opened account %s for %s at %s", account.account_id, user.name, user.maildir)
        return account

    def open_accounts(self) -> list[Account]:
        with self._lock:
            return list(self._accounts.values())

    def watcher_count(self) -> int:
        return len(self._watchers)

    def _close(self, name: str, account: Account) -> None:
        watcher = self._watchers.pop(name, None)
        if watcher is not None:
            watcher.stop()
        account.close()

    def close_idle(self, busy: Callable[[Account], bool]) -> list[str]:
        """Close accounts unused for ``idle_close`` seconds that are not ``busy``."""
        if self.config.idle_close <= 0:
            return []
        limit = time.monotonic() - self.config.idle_close
        with self._lock:
            idle = [
                (name, account)
                for name, account in self._accounts.items()
                if self._used.get(name, 0) < limit and not busy(account)
            ]
            for name, _ in idle:
                del self._accounts[name]
        for name, account in idle:
            # Under its lock: a request that took the account a moment ago finishes first.
            with account.lock:
                self._close(name, account)
            log.info("closed idle account %s of %s", account.account_id, name)
        return [name for name, _ in idle]

    def close_all(self) -> None:
        with self._lock:
            accounts = list(self._accounts.items())
            self._accounts.clear()
        for name, account in accounts:
            self._close(name, account)
