"""The server room's front door: one ``Server`` per process, with no HTTP in it.

It is the composition root. It opens each user's account (server/accounts.py)
and wires it: changes to the push hub, the user's sending addresses and Sieve
location (server/policy.py). It says what the Session offers (capabilities,
the accounts a user may use), runs JMAP requests (server/execute.py), checks
logins (server/login.py), and starts and stops the background services: Web
Push (server/push.py), the EmailSubmission sender (delivery/) and the closing
of idle accounts. Transports (http/) translate to calls on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import anyio.to_thread

from maildir_jmap import dovecot_config, mail
from maildir_jmap.config import Config
from maildir_jmap.core.capabilities import CORE, QUOTA, WEBSOCKET
from maildir_jmap.core.dispatch import AccountAccess, Context, Registry
from maildir_jmap.core.request import Invocation, Request
from maildir_jmap.core.session import capabilities_digest
from maildir_jmap.core.types import JSONObject
from maildir_jmap.delivery.scheduler import Sender
from maildir_jmap.dovecot_auth import AuthUnavailable
from maildir_jmap.mail import submission
from maildir_jmap.mail.identity import IDENTITY
from maildir_jmap.mail.quota import QUOTA_TYPE, state_of
from maildir_jmap.mail.vacation import VACATION_TYPE
from maildir_jmap.metrics import observe_call
from maildir_jmap.server import policy
from maildir_jmap.server.accounts import AccountPool
from maildir_jmap.server.execute import Slots, run_request
from maildir_jmap.server.login import Login
from maildir_jmap.server.push import WEBPUSH_VAPID, PushService
from maildir_jmap.server.registry import build_registry
from maildir_jmap.server.routing import Routing, parse_backend
from maildir_jmap.server.throttle import Throttle
from maildir_jmap.store.account import Account
from maildir_jmap.store.index import EMAIL, MAILBOX, THREAD
from maildir_jmap.store.outbox import SUBMISSION_TYPE, Outbox
from maildir_jmap.store.quota import Quota
from maildir_jmap.store.roles import DovecotMailboxes
from maildir_jmap.sync.subscriptions import FILE_NAME as SUBSCRIPTIONS_FILE
from maildir_jmap.tokens import TokenStore
from maildir_jmap.users import User, Users

log = logging.getLogger(__name__)
WEBSOCKET_PATH = "/jmap/ws/"
CREDENTIAL_CHECK = 0.5
"""Seconds between looks for ended credentials (issue 17: streams close within 1 s)."""


class Server:
    def __init__(
        self,
        config: Config,
        users: Users,
        tokens: TokenStore | None = None,
        registry: Registry | None = None,
        dovecot: dovecot_config.DovecotConfig | None = None,
    ) -> None:
        self.config = config
        self.users = users
        # Dovecot is the source of truth: its effective config, read once (serve
        # passes what it read for its own checks).
        self.dovecot = dovecot or read_dovecot(config.dovecot_config)
        self.registry = registry or build_registry(
            vacation_response=config.sieve_dir is not None or self._dovecot_runs_sieve(),
            quotas=self.dovecot is not None and "quota" in self.dovecot.plugins,
        )
        self.login = Login(
            users,
            tokens or TokenStore(config.state_dir / "tokens.json"),
            Throttle(
                config.max_failures_per_user,
                config.max_failures_per_address,
                enabled=config.throttle_logins,
            ),
        )
        self.push = PushService(config, self.login.alive)
        self.push.subscriptions.copy_of = self._subscriptions_copy
        # One Maildir gets the same roles whoever indexes it (serve, index, check),
        # and the folders Dovecot autocreates are there for JMAP as for IMAP.
        boxes = self.dovecot.namespace.mailboxes if self.dovecot else DovecotMailboxes()
        roles = config.mailbox_roles if config.mailbox_roles is not None else boxes.roles
        self.pool = AccountPool(config, self._wire, roles, boxes.autocreate, self.mail_of)
        self._capabilities: dict[str, tuple[dict[str, JSONObject], str]] = {}
        """The Session's capabilities and their digest, by base URL (``capabilities``)."""
        self.requests = Slots()
        """Requests running per user (RFC 8620 §2 maxConcurrentRequests)."""
        self.uploads = Slots()
        """Uploads running per user (§2 maxConcurrentUpload)."""
        self.outbound: Sender | None = None
        """The EmailSubmission sender (delivery/scheduler.py), while the server runs."""
        self._owners: dict[str, str] = {}
        self._tasks: list[asyncio.Task[None]] = []
        backends = tuple(b for b in map(parse_backend, config.route_backends) if b)
        self.routing = Routing(backends, config.route_port) if backends else None
        """Which backend serves each user (server/routing.py); None: not routing."""
        me = parse_backend(f"{config.host}:{config.port}")
        self.own_backend = me if me in backends else None
        """This process among ``route.backends`` (None: not listed, so it serves all)."""

    # -- accounts ------------------------------------------------------------------

    def _dovecot_runs_sieve(self) -> bool:
        """Pigeonhole runs at delivery with a personal script location."""
        dovecot = self.dovecot
        return bool(dovecot and "sieve" in dovecot.delivery_plugins and dovecot.plugin.get("sieve"))

    def mail_of(self, user: User) -> dovecot_config.UserMail | None:
        """What Dovecot says about this user: from its userdb (Dovecot's auth), else
        its config applied to the user's name and home (a users file next to it)."""
        if user.dovecot is not None:
            return user.dovecot
        if self.dovecot is None:
            return None
        return self.dovecot.for_user({"user": user.name, "home": str(user.home_dir())})

    def _wire(self, user: User, account: Account) -> None:
        # Every committed change set reaches push listeners (DESIGN: the store
        # announces changes through listeners and never imports the hub).
        hub = self.push.hub
        quota_seen: dict[str, str] = {}

        def publish(acct: Account, changed: dict[str, str]) -> None:
            # RFC 9425 §6: Quota is pushed like any type, when its usage moved.
            if acct.quota is not None and EMAIL in changed:
                state = state_of(acct)
                if quota_seen.get("state") != state:
                    quota_seen["state"] = state
                    changed = {**changed, QUOTA_TYPE: state}
            hub.publish(acct.account_id, changed)

        account.listeners.append(publish)
        account.addresses = policy.sending_addresses(self.config, user)
        mail = self.mail_of(user)
        account.sieve = policy.sieve_location(self.config, user)
        if account.sieve is None and mail is not None and self._dovecot_runs_sieve():
            account.sieve = mail.sieve
        if mail is not None and mail.quota is not None and QUOTA in self.registry.capabilities():
            separator = mail.separator or account.layout.separator
            account.quota = Quota(mail.quota, account.maildir, separator)
        self._owners[account.account_id] = user.name
        if self.config.account_state is not None:
            self.push.subscriptions.adopt(user.name)  # they may have moved here

    def account(self, user: User) -> Account:
        """The user's account, opened on first use (server/accounts.py)."""
        return self.pool.get(user)

    def backend_for(self, name: str) -> str | None:
        """The backend that serves ``name`` (blocking: asks Dovecot's passdb)."""
        if self.routing is None:
            return None
        return self.routing.backend_for(name, self.users.route_fields(name))

    def _subscriptions_copy(self, name: str) -> Path | None:
        """The user's own copy of their push subscriptions, in their account state
        (``mail.account_state``), written only by the backend that serves them."""
        user = self.users.get(name) if self.config.account_state is not None else None
        state = policy.account_state_dir(self.config, user) if user is not None else None
        if state is None or not self.serves(name):
            return None
        return state / SUBSCRIPTIONS_FILE

    def serves(self, name: str) -> bool:
        """Whether routing sends ``name`` here; what this process opens on its own
        (push subscriptions, queued sends at start-up) it opens only then, so a user
        who moved to another backend is not held here by the owner lock. Yes when
        not routing, when this process is not among the backends, or when Dovecot's
        passdb cannot be asked (the owner lock still arbitrates)."""
        if self.routing is None or self.own_backend is None:
            return True
        try:
            backend = self.backend_for(name)
        except AuthUnavailable:
            return True
        if backend != self.own_backend:
            log.info("%s is served by %s, not by this backend", name, backend)
        return backend == self.own_backend

    def open_served(self, name: str) -> Account | None:
        """The account of ``name`` if this backend serves them (``serves``)."""
        return self.open_account(name) if self.serves(name) else None

    def open_account(self, name: str) -> Account | None:
        user = self.users.get(name)
        return self.account(user) if user is not None else None

    def owner_of(self, account_id: str) -> str | None:
        """The user whose account this is, if it was opened."""
        return self._owners.get(account_id)

    def busy(self, account: Account) -> bool:
        """Whether closing ``account`` while idle would lose something: a push
        listener, a verified push subscription or a queued send."""
        if self.push.hub.listening(account.account_id):
            return True
        owner = self._owners.get(account.account_id)
        if owner is not None and not self.serves(owner):
            return False  # moved away: let the backend that serves them own it
        if owner in self.push.subscribed_users():
            return True
        return bool(Outbox(account.state_dir).jobs())

    def access(self, user: User) -> dict[str, AccountAccess]:
        """The accounts this user may use, keyed by account id. Each user sees only
        their own: any other accountId is accountNotFound (RFC 8620 §3.6.2)."""
        account = self.account(user)
        access = AccountAccess(
            account_id=account.account_id,
            name=user.name,
            capabilities=mail.account_capabilities(
                self.registry, account, policy.submission_capability(self.config)
            ),
            is_personal=True,
            is_read_only=account.is_read_only,
            backend=account,
        )
        return {account.account_id: access}

    def states(self, user: User) -> dict[str, dict[str, str]]:
        """Every push-relevant state of the user's accounts (RFC 8887 pushState)."""
        out: dict[str, dict[str, str]] = {}
        for account_id, access in self.access(user).items():
            account = access.backend
            assert isinstance(account, Account)
            states = {t: account.state(t) for t in (MAILBOX, EMAIL, THREAD)}
            states |= {
                t: account.objects.state(t) for t in (IDENTITY, SUBMISSION_TYPE, VACATION_TYPE)
            }
            if account.quota is not None:
                states[QUOTA_TYPE] = state_of(account)
            out[account_id] = states
        return out

    # -- the Session and requests --------------------------------------------------

    def capabilities(self, base_url: str) -> tuple[dict[str, JSONObject], str]:
        """The Session's ``capabilities`` (core limits, what the datatypes add, and the
        WebSocket transport, RFC 8887 §3, at ``base_url``'s ws/wss twin) with their
        ``capabilities_digest``. They change only with the configuration, and every
        API response states the Session's state: made once per base URL (a few:
        the base comes from the Host header, so at most 64 are kept)."""
        kept = self._capabilities.get(base_url)
        if kept is None:
            websocket_url = "ws" + base_url.removeprefix("http") + WEBSOCKET_PATH
            made = {
                CORE: self.config.limits.capability(),
                **mail.session_capabilities(self.registry),
                WEBSOCKET: {"url": websocket_url, "supportsPush": True},
                WEBPUSH_VAPID: {"applicationServerKey": self.push.vapid_public_key},
            }
            if len(self._capabilities) >= 64:
                self._capabilities.clear()
            kept = self._capabilities[base_url] = (made, capabilities_digest(made))
        return kept

    def supported(self) -> frozenset[str]:
        """Capabilities a request may name in ``using``."""
        return self.registry.capabilities() | {WEBSOCKET, WEBPUSH_VAPID}

    def run_request(
        self,
        user: User,
        accounts: dict[str, AccountAccess],
        request: Request,
        credential: str = "",
        emit: Callable[[Invocation], None] | None = None,
    ) -> JSONObject:
        """Run ``request`` for ``user`` (blocking: call it from a worker thread). The
        response may hold pre-serialized values: write it with orjson, as the HTTP
        and WebSocket transports do. ``emit``: Context.emit."""
        ctx = Context(
            username=user.name,
            accounts=accounts,
            limits=self.config.limits,
            credential=credential,
            push=self.push.access(user.name, credential) if credential else None,
            outbound=self.outbound,
            observe=observe_call,
            serialized=True,
            emit=emit,
        )
        return run_request(request, ctx, self.registry, self.config.lock_timeout)

    # -- the background services ---------------------------------------------------

    def open_all(self) -> None:
        """Open every user's account now (embedded mode: index before serving)."""
        for name in self.users.names():
            self.open_account(name)

    async def start(self) -> None:
        """Open what must be open before anyone logs in, then start the services:
        with one user their account (indexed before serving); the accounts with
        verified push subscriptions (so Dovecot's changes reach them after a
        restart); Web Push; the sender (which opens accounts with queued sends);
        the closing of idle accounts."""
        if len(self.users.names()) == 1:
            await anyio.to_thread.run_sync(self.open_all)

        def open_subscribed() -> None:
            for name in self.push.subscribed_users():
                self.open_served(name)

        await anyio.to_thread.run_sync(open_subscribed)
        await self.push.start(self.owner_of)
        sender = Sender(self.config.sending, self.open_served, submission.record_outcome)
        await sender.start(self.config.state_dir)
        self.outbound = sender
        self._tasks = [
            asyncio.ensure_future(self._close_idle_accounts()),
            asyncio.ensure_future(self._watch_credentials()),
        ]

    async def stop(self) -> None:
        """Stop the services, then the watchers, and flush every journal."""
        for task in self._tasks:
            task.cancel()
        if self.outbound is not None:
            await self.outbound.stop()
        await self.push.stop()
        await anyio.to_thread.run_sync(self.pool.close_all)

    async def _close_idle_accounts(self) -> None:
        """Every so often, close accounts nobody has used for ``idle_close`` seconds."""
        period = max(1.0, min(60.0, self.config.idle_close / 10))
        while self.config.idle_close > 0:
            await asyncio.sleep(period)
            try:
                await anyio.to_thread.run_sync(self.pool.close_idle, self.busy)
            except Exception:
                log.exception("closing idle accounts failed")

    def reconfigure(self, config: Config) -> None:
        """Run with ``config`` from now on: for the settings a reload may change
        (reload.py); the others were kept as they were by the caller."""
        self.config = config
        self.pool.config = config
        self.login.throttle.limits = {
            "user": config.max_failures_per_user,
            "address": config.max_failures_per_address,
        }
        self.login.throttle.enabled = config.throttle_logins
        if self.outbound is not None:
            self.outbound.use(config.sending)

    def end_dead_credentials(self) -> int:
        """Re-read a changed users file, then close the streams of every credential
        that no longer holds (a revoked token, a changed password, a removed user);
        how many streams were closed."""
        self.users.refresh()
        closed = 0
        for credential in self.push.hub.credentials():
            if not self.login.alive(credential):
                count = self.push.hub.end(credential)
                kind, _, rest = credential.partition(":")
                who = rest.split(":")[0] if kind != "token" else f"token {rest}"
                log.info("closed %d event stream(s) of %s: credential no longer valid", count, who)
                closed += count
        return closed

    async def _watch_credentials(self) -> None:
        while True:
            await asyncio.sleep(CREDENTIAL_CHECK)
            try:
                await anyio.to_thread.run_sync(self.end_dead_credentials)
            except Exception:
                log.exception("checking credentials failed")


def read_dovecot(path: Path | None) -> dovecot_config.DovecotConfig | None:
    """Dovecot's effective config (tests replace this to ignore the machine's)."""
    return dovecot_config.read(path)
