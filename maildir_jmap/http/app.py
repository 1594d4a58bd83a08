"""The FastAPI application factory: the server room (server/) behind HTTP routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from maildir_jmap import __version__
from maildir_jmap.config import Config
from maildir_jmap.core.dispatch import Registry
from maildir_jmap.dovecot_config import DovecotConfig
from maildir_jmap.http import api, blobs, ops, push, route, websocket
from maildir_jmap.http.proxy import TrustedProxies
from maildir_jmap.server.accounts import AccountUnavailable
from maildir_jmap.server.server import Server
from maildir_jmap.tokens import TokenStore
from maildir_jmap.users import Users

log = logging.getLogger(__name__)

# Clients read these raw and stream them: never compressed.
UNCOMPRESSED_PREFIXES = ("/jmap/download/", "/jmap/eventsource")


GZIP_LEVEL = 1
"""nginx's default gzip_comp_level. Measured on the 10k bench (issue 18): level 6
cost 8-12 ms on 50 full messages (219 KB of JSON; level 1: ~2 ms, 51 KB out instead
of 37 KB) and ~100 ms on a 4,483-Email initial sync (3.6 MB; level 1: ~31 ms, 815 KB
instead of 643 KB); the bytes saved take less time on the wire than that even at
100 Mbit/s."""


class SelectiveGZip:
    """gzip for JSON responses when the client accepts it; downloads and event
    streams pass through untouched. Starlette compresses bodies over 128 KiB in
    a worker thread, so a large response does not hold up the event loop."""

    def __init__(self, app: ASGIApp, minimum_size: int) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size, compresslevel=GZIP_LEVEL)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(UNCOMPRESSED_PREFIXES):
            await self.gzip(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def create_app(
    config: Config,
    users: Users,
    tokens: TokenStore | None = None,
    registry: Registry | None = None,
    dovecot: DovecotConfig | None = None,
) -> FastAPI:
    server = Server(config, users, tokens, registry, dovecot)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    app = FastAPI(
        title="maildir-jmap", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan
    )
    app.state.server = server
    app.include_router(api.router)
    app.include_router(blobs.router)
    app.include_router(push.router)
    app.include_router(websocket.router)
    app.include_router(ops.router)
    app.include_router(route.router)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return api.problem_response(exc.status_code, "about:blank", str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return api.problem_response(400, "about:blank", "Malformed request.")

    @app.exception_handler(AccountUnavailable)
    async def account_unavailable(request: Request, exc: AccountUnavailable) -> Response:
        # One user's broken Maildir: their requests fail, nobody else's.
        return api.unavailable_response(exc)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # A last resort: the detail stays in the log, never in the response.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return api.problem_response(500, "about:blank", "Internal server error.")

    app.add_middleware(SelectiveGZip, minimum_size=config.gzip_minimum_size)
    if config.trusted_proxies:
        app.add_middleware(
            TrustedProxies,
            proxies=config.trusted_proxies,
            public_url=config.public_url is not None,
        )
    return app


class OneLineStartupError:
    """uvicorn logs a failed start-up with the whole traceback the app sends; the
    command line wants one line (issue 17), the traceback only at DEBUG."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def shortened(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "lifespan.startup.failed" and message.get("message"):
                log.debug("start-up failed:\n%s", message["message"])
                last = str(message["message"]).strip().splitlines()[-1]
                message = {**message, "message": f"cannot start: {last}"}
            await send(message)

        await self.app(scope, receive, shortened)
