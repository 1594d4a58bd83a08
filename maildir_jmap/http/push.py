"""EventSource push (RFC 8620 §7.3)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from maildir_jmap.core.types import format_utc_date, is_id
from maildir_jmap.http.api import (
    base_url,
    current_user,
    json_response,
    open_account_of,
    problem_response,
    server_of,
    unauthorized_response,
)
from maildir_jmap.http.auth import authenticate, credential_of
from maildir_jmap.server.login import Unauthorized
from maildir_jmap.server.pushtoken import COOKIE
from maildir_jmap.server.server import Server
from maildir_jmap.sync.hub import ENDED, Listener, state_change
from maildir_jmap.users import User

router = APIRouter()

# §7.3: a server MUST NOT have a minimum above 30 s or a maximum below 300 s.
PING_MIN, PING_MAX = 1, 600


def _event(name: str, data: object, event_id: str | None = None) -> bytes:
    head = f"event: {name}\n" + (f"id: {event_id}\n" if event_id else "")
    return head.encode() + b"data: " + orjson.dumps(data) + b"\n\n"


def _filter(
    changed: Mapping[str, Mapping[str, str]], types: frozenset[str] | None
) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for account_id, states in changed.items():
        kept = {t: s for t, s in states.items() if types is None or t in types}
        if kept:
            out[account_id] = kept
    return out


async def _stream(
    listener: Listener,
    types: frozenset[str] | None,
    close_after_state: bool,
    ping: int,
    unsubscribe: Callable[[Listener], None],
) -> AsyncIterator[bytes]:
    try:
        # A comment line first, so clients and proxies see the stream is open.
        yield b": maildir-jmap event stream\n\n"
        while True:
            try:
                changed = await asyncio.wait_for(listener.queue.get(), ping or None)
            except TimeoutError:
                yield _event("ping", {"interval": ping})
                continue
            if changed is ENDED:
                return  # the credential was revoked or its password changed
            kept = _filter(changed, types)
            if not kept:
                continue
            yield _event("state", state_change(kept))
            if close_after_state:
                return
    finally:
        unsubscribe(listener)


@router.post("/jmap/push-token")
async def push_token(request: Request) -> Response:
    """Issue a short-lived EventSource token for browsers (see server/pushtoken.py)."""
    server = server_of(request)
    user = await current_user(request)
    if isinstance(user, Response):
        return user
    token, expires = server.push.tokens.issue(user.name, sorted(server.access(user)))
    response = json_response(
        {"token": token, "expires": format_utc_date(datetime.fromtimestamp(expires, UTC))}
    )
    response.set_cookie(
        COOKIE,
        token,
        max_age=expires - int(time.time()),
        path="/jmap/eventsource",
        httponly=True,
        samesite="strict",
        secure=base_url(request, server).startswith("https"),
    )
    return response


async def _eventsource_user(request: Request, server: Server) -> User:
    """Authorization header first; else a push token from the query or the cookie."""
    if request.headers.get("authorization"):
        return await authenticate(request, server.login)
    token = request.query_params.get("access_token") or request.cookies.get(COOKIE)
    name = server.push.tokens.verify(token) if token else None
    user = server.users.get(name) if name else None
    if user is None:
        raise Unauthorized("authentication required (or a valid push token)")
    return user


@router.get("/jmap/eventsource/")
@router.get("/jmap/eventsource", include_in_schema=False)
async def eventsource(request: Request) -> Response:
    server = server_of(request)
    try:
        user = await _eventsource_user(request, server)
    except Unauthorized as exc:
        return unauthorized_response(exc)
    await open_account_of(server, user)
    query = request.query_params
    raw_types = query.get("types", "*")
    close_after = query.get("closeafter", "no")
    raw_ping = query.get("ping", "0")
    if raw_types == "*":
        types = None
    else:
        names = raw_types.split(",")
        if not all(is_id(n.replace("/", "_")) for n in names):
            return problem_response(400, "about:blank", "types must be '*' or type names")
        types = frozenset(names)
    if close_after not in ("state", "no"):
        return problem_response(400, "about:blank", "closeafter must be 'state' or 'no'")
    if not raw_ping.isdigit() or len(raw_ping) > 9:
        return problem_response(400, "about:blank", "ping must be a number of seconds")
    ping = int(raw_ping)
    if ping:
        ping = min(max(ping, PING_MIN), PING_MAX)
    hub = server.push.hub
    listener = hub.subscribe(server.access(user), credential_of(request) or f"user:{user.name}")
    return StreamingResponse(
        _stream(listener, types, close_after == "state", ping, hub.unsubscribe),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
