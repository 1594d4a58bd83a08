"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from maildir_jmap import __version__
from maildir_jmap.config import Config
from maildir_jmap.core.dispatch import Registry
from maildir_jmap.delivery.scheduler import Sender
from maildir_jmap.http import api, blobs, ops, push, websocket
from maildir_jmap.http.accounts import AccountUnavailable
from maildir_jmap.http.auth import Throttle, credential_alive
from maildir_jmap.http.proxy import TrustedProxies
from maildir_jmap.http.pushtoken import PushTokens
from maildir_jmap.http.state import AppState
from maildir_jmap.mail import build_registry, vacation
from maildir_jmap.sync import ece, push_subscription
from maildir_jmap.sync.subscriptions import SubscriptionStore
from maildir_jmap.sync.webpush import WebPush
from maildir_jmap.tokens import TokenStore
from maildir_jmap.users import Users

log = logging.getLogger(__name__)

# Clients read these raw and stream them: never compressed.
UNCOMPRESSED_PREFIXES = ("/jmap/download/", "/jmap/eventsource")


class SelectiveGZip:
    """gzip for JSON responses when the client accepts it; downloads and event
    streams pass through untouched."""

    def __init__(self, app: ASGIApp, minimum_size: int) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size, compresslevel=6)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(UNCOMPRESSED_PREFIXES):
            await self.gzip(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def load_push(state: AppState) -> ec.EllipticCurvePrivateKey:
    """The VAPID key (made on first start) and the stored PushSubscriptions."""
    key = ece.load_or_create_key(state.config.state_dir / "vapid-key.pem")
    state.vapid_public_key = ece.public_key_b64(key)
    state.subscriptions = SubscriptionStore.open(
        state.config.state_dir,
        state.vapid_public_key,
        lambda credential: credential_alive(credential, state.users, state.tokens),
    )
    return key


async def close_idle_accounts(state: AppState) -> None:
    """Every so often, close accounts nobody has used for ``idle_close`` seconds."""
    period = max(1.0, min(60.0, state.config.idle_close / 10))
    while state.config.idle_close > 0:
        await asyncio.sleep(period)
        try:
            await anyio.to_thread.run_sync(state.pool.close_idle, state.busy)
        except Exception:
            log.exception("closing idle accounts failed")


async def start_webpush(state: AppState, key: ec.EllipticCurvePrivateKey) -> WebPush:
    """Open the accounts that have verified subscriptions (so Dovecot's changes
    reach them after a restart, before anyone logs in), then start sending."""
    store = state.subscriptions
    assert store is not None

    def open_subscribed() -> None:
        for name in {s.user for s in store.all() if s.verified}:
            user = state.users.get(name)
            if user is not None:
                state.account(user)

    await anyio.to_thread.run_sync(open_subscribed)
    sender = WebPush(
        store,
        state.hub,
        key,
        state.push_subject(),
        state.owner_of,
        allow_private=state.config.push_allow_private_targets,
    )
    await sender.start()
    state.webpush = sender
    return sender


def create_app(
    config: Config,
    users: Users,
    tokens: TokenStore | None = None,
    registry: Registry | None = None,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state: AppState = app.state.jmap
        if len(state.users.names()) == 1:
            await anyio.to_thread.run_sync(state.open_all)
        webpush = await start_webpush(state, vapid_key)
        sender = Sender(state.config.sending, state.open_account)
        await sender.start(state.config.state_dir)
        state.outbound = sender
        reaper = asyncio.ensure_future(close_idle_accounts(state))
        try:
            yield
        finally:
            reaper.cancel()
            await sender.stop()
            await webpush.stop()
            await anyio.to_thread.run_sync(state.close)

    app = FastAPI(
        title="maildir-jmap", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan
    )
    app.state.jmap = AppState(
        throttle=Throttle(config.max_failures_per_user, config.max_failures_per_address),
        config=config,
        users=users,
        tokens=tokens or TokenStore(config.state_dir / "tokens.json"),
        registry=registry or build_registry(),
    )
    app.state.jmap.push_tokens = PushTokens(config.state_dir / "push-token.key")
    vapid_key = load_push(app.state.jmap)
    registry = app.state.jmap.registry
    if registry.get("PushSubscription/get") is None:
        for method in push_subscription.methods():
            registry.add(method)
    # VacationResponse only takes effect through Pigeonhole: offered when configured.
    if config.sieve_dir is not None and registry.get("VacationResponse/get") is None:
        for method in vacation.methods():
            registry.add(method)
    app.include_router(api.router)
    app.include_router(blobs.router)
    app.include_router(push.router)
    app.include_router(websocket.router)
    app.include_router(ops.router)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return api.problem_response(exc.status_code, "about:blank", str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return api.problem_response(400, "about:blank", "Malformed request.")

    @app.exception_handler(AccountUnavailable)
    async def account_unavailable(request: Request, exc: AccountUnavailable) -> Response:
        # One user's broken Maildir: their requests fail, nobody else's.
        return api.problem_response(503, "about:blank", str(exc), {"Retry-After": "30"})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # A last resort: the detail stays in the log, never in the response.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return api.problem_response(500, "about:blank", "Internal server error.")

    app.add_middleware(SelectiveGZip, minimum_size=config.gzip_minimum_size)
    if config.trusted_proxies:
        app.add_middleware(TrustedProxies, proxies=config.trusted_proxies)
    return app
