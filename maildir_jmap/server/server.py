"""What the HTTP layer shares between requests: config, users, tokens, accounts."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maildir_jmap import mail
from maildir_jmap.config import Config
from maildir_jmap.core.capabilities import CORE, WEBSOCKET
from maildir_jmap.core.dispatch import AccountAccess, Registry
from maildir_jmap.core.types import JSONObject
from maildir_jmap.http.accounts import AccountPool
from maildir_jmap.http.auth import Throttle
from maildir_jmap.http.pushtoken import PushTokens
from maildir_jmap.mail.identity import IDENTITY
from maildir_jmap.mail.vacation import VACATION_TYPE
from maildir_jmap.store.account import Account
from maildir_jmap.store.index import EMAIL, MAILBOX, THREAD
from maildir_jmap.store.outbox import SUBMISSION_TYPE, Outbox
from maildir_jmap.store.sieve import SieveLocation
from maildir_jmap.sync.hub import Hub
from maildir_jmap.sync.push_subscription import PushAccess
from maildir_jmap.sync.subscriptions import SubscriptionStore
from maildir_jmap.tokens import TokenStore
from maildir_jmap.users import User, Users

log = logging.getLogger(__name__)
WEBSOCKET_PATH = "/jmap/ws/"
WEBPUSH_VAPID = "urn:ietf:params:jmap:webpush-vapid"
"""RFC 9749 §3: the Session capability carrying the VAPID public key."""


@dataclass
class AppState:
    config: Config
    users: Users
    tokens: TokenStore
    registry: Registry
    inflight: dict[str, int] = field(default_factory=dict)
    uploads: dict[str, int] = field(default_factory=dict)
    hub: Hub = field(default_factory=Hub)
    push_tokens: PushTokens | None = None
    pool: AccountPool = field(init=False)
    subscriptions: SubscriptionStore | None = None
    vapid_public_key: str = ""
    webpush: Any = None
    """The PushSubscription sender (sync/webpush.py), running while the app is."""
    _owners: dict[str, str] = field(default_factory=dict)
    throttle: Throttle = field(default_factory=Throttle)
    outbound: Any = None
    """The EmailSubmission sender (delivery/scheduler.py), running while the app is."""

    def __post_init__(self) -> None:
        self.pool = AccountPool(self.config, self._prepare)

    def capabilities(self, base_url: str) -> dict[str, JSONObject]:
        """The Session's ``capabilities``: core limits, what the datatypes add, and the
        WebSocket transport (RFC 8887 §3) at ``base_url``'s ws/wss twin."""
        websocket_url = "ws" + base_url.removeprefix("http") + WEBSOCKET_PATH
        capabilities = {
            CORE: self.config.limits.capability(),
            **mail.session_capabilities(self.registry),
            WEBSOCKET: {"url": websocket_url, "supportsPush": True},
        }
        if self.vapid_public_key:
            capabilities[WEBPUSH_VAPID] = {"applicationServerKey": self.vapid_public_key}
        return capabilities

    def supported(self) -> frozenset[str]:
        """Capabilities a request may name in ``using``."""
        return self.registry.capabilities() | {WEBSOCKET, WEBPUSH_VAPID}

    def states(self, user: User) -> dict[str, dict[str, str]]:
        """Every push-relevant state of the user's accounts (RFC 8887 pushState)."""
        out: dict[str, dict[str, str]] = {}
        for access in self.access(user).values():
            account: Account = access.backend
            states = {t: account.state(t) for t in (MAILBOX, EMAIL, THREAD)}
            states |= {
                t: account.objects.state(t) for t in (IDENTITY, SUBMISSION_TYPE, VACATION_TYPE)
            }
            out[access.account_id] = states
        return out

    def account(self, user: User) -> Account:
        """The user's account, opened on first use (http/accounts.py)."""
        return self.pool.get(user)

    def _prepare(self, user: User, account: Account) -> None:
        # Every committed change set reaches push listeners (DESIGN: the store
        # announces changes through listeners and never imports the hub).
        account.listeners.append(lambda acct, changed: self.hub.publish(acct.account_id, changed))
        account.addresses = self.sending_addresses(user)
        account.sieve = self.sieve_location(user)
        self._owners[account.account_id] = user.name

    def busy(self, account: Account) -> bool:
        """Whether closing ``account`` while idle would lose something: a push
        listener, a verified push subscription or a queued send."""
        if self.hub.listening(account.account_id):
            return True
        user = self._owners.get(account.account_id)
        if self.subscriptions is not None and any(
            s.user == user and s.verified for s in self.subscriptions.all()
        ):
            return True
        return bool(Outbox(account.state_dir).jobs())

    def sending_addresses(self, user: User) -> tuple[str, ...]:
        """The users file's addresses; else the login if it is an address; else
        login@mail_domain (RFC 8621 §6: what Identities may use)."""
        if user.addresses:
            return user.addresses
        if "@" in user.name:
            return (user.name,)
        return (f"{user.name}@{self.config.mail_domain or socket.getfqdn()}",)

    def sieve_location(self, user: User) -> SieveLocation | None:
        if self.config.sieve_dir is None:
            return None
        values = {"home": str(user.maildir.parent), "user": user.name}
        return SieveLocation(
            Path(self.config.sieve_dir.format(**values)).expanduser(),
            Path(self.config.sieve_active.format(**values)).expanduser(),
        )

    def open_account(self, name: str) -> Account | None:
        user = self.users.get(name)
        return self.account(user) if user is not None else None

    def submission_capability(self) -> JSONObject:
        """RFC 8621 §1.3.2. Delayed send is ours (held here, then relayed), so
        FUTURERELEASE is offered whatever the smarthost supports; SIZE is the
        limit we check. The FUTURERELEASE date argument is left out so the Session
        does not change every second."""
        sending = self.config.sending
        return {
            "maxDelayedSend": sending.max_delayed_send,
            "submissionExtensions": {
                "FUTURERELEASE": [str(sending.max_delayed_send)],
                "SIZE": [str(sending.max_size)],
            },
        }

    def owner_of(self, account_id: str) -> str | None:
        """The user whose account this is, if it is open."""
        return self._owners.get(account_id)

    def push_access(self, user: User, credential: str) -> PushAccess | None:
        if self.subscriptions is None:
            return None
        return PushAccess(
            self.subscriptions,
            user.name,
            credential,
            allow_private=self.config.push_allow_private_targets,
            allow_http=self.config.push_allow_http,
            max_lifetime=self.config.push_max_lifetime,
        )

    def push_subject(self) -> str:
        """VAPID ``sub`` (RFC 8292 §2.1): whom a push service can contact."""
        if self.config.push_subject:
            return self.config.push_subject
        if self.config.public_url and self.config.public_url.startswith("https://"):
            return self.config.public_url
        return f"mailto:postmaster@{socket.getfqdn()}"

    def open_accounts(self) -> list[Account]:
        return self.pool.open_accounts()

    def open_all(self) -> None:
        """Open every user's account now (embedded mode: index before serving)."""
        for name in self.users.names():
            user = self.users.get(name)
            if user is not None:
                self.account(user)

    def close(self) -> None:
        """Stop watchers and flush every account's journal (graceful shutdown)."""
        self.pool.close_all()

    def access(self, user: User) -> dict[str, AccountAccess]:
        """The accounts this user may use, keyed by account id. Each user sees only
        their own: any other accountId is accountNotFound (RFC 8620 §3.6.2)."""
        account = self.account(user)
        access = AccountAccess(
            account_id=account.account_id,
            name=user.name,
            capabilities=mail.account_capabilities(
                self.registry, account, self.submission_capability()
            ),
            is_personal=True,
            is_read_only=account.is_read_only,
            backend=account,
        )
        return {account.account_id: access}
