"""JMAP over WebSocket (RFC 8887): requests, responses and push on one connection.

The handshake is authenticated like any API request (§4.1) and must offer the
``jmap`` subprotocol (§4.2). Each text message is one JSON object whose
``@type`` says what it is (§4.3): a ``Request`` runs through the same core as
``POST /jmap/api/`` and is answered with a ``Response`` or a ``RequestError``
carrying the client's ``id`` as ``requestId``; ``WebSocketPushEnable`` and
``WebSocketPushDisable`` switch StateChange pushes on and off (§4.3.5). Pushes
are sent from a second task fed by the hub, so a long request never delays them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from maildir_jmap.core.errors import RequestError
from maildir_jmap.core.request import decode_json, request_from_json
from maildir_jmap.http.api import open_account_of, server_of, session_for, unavailable_response
from maildir_jmap.http.auth import authenticate, credential_of
from maildir_jmap.server.accounts import AccountUnavailable
from maildir_jmap.server.login import Unauthorized
from maildir_jmap.server.server import WEBSOCKET_PATH, Server
from maildir_jmap.sync.hub import ENDED, state_change
from maildir_jmap.users import User

log = logging.getLogger(__name__)
router = APIRouter()
SUBPROTOCOL = "jmap"
MAX_MESSAGE = 10_000_000


def push_state(states: dict[str, dict[str, str]]) -> str:
    """An opaque token for everything the user can see (RFC 8887 §4.3.5.1)."""
    return hashlib.sha256(orjson.dumps(states, option=orjson.OPT_SORT_KEYS)).hexdigest()[:20]


class Connection:
    def __init__(self, websocket: WebSocket, server: Server, user: User) -> None:
        self.websocket = websocket
        self.server = server
        self.user = user
        self.push_types: frozenset[str] | None = None
        self.pushing = False
        self.send_lock = asyncio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.websocket.send_text(orjson.dumps(message).decode())

    async def error(self, exc: RequestError, request_id: object) -> None:
        body: dict[str, Any] = {"@type": "RequestError", **exc.problem()}
        if isinstance(request_id, str):
            body["requestId"] = request_id
        await self.send(body)

    async def handle(self, text: str) -> None:
        request_id: object = None
        try:
            if len(text) > MAX_MESSAGE:
                raise RequestError("limit", "The request is too large.", limit="maxSizeRequest")
            data = decode_json(text.encode())
            if not isinstance(data, dict) or not isinstance(data.get("@type"), str):
                raise RequestError("notRequest", "Messages are objects with an @type.")
            request_id = data.get("id")
            kind = data["@type"]
            if kind == "Request":
                await self.request(data, request_id)
            elif kind == "WebSocketPushEnable":
                await self.enable_push(data)
            elif kind == "WebSocketPushDisable":
                self.pushing = False
            else:
                raise RequestError("notRequest", f"Unknown message type {kind!r}.")
        except RequestError as exc:
            await self.error(exc, request_id)

    async def request(self, data: dict[str, Any], request_id: object) -> None:
        if request_id is not None and not isinstance(request_id, str):
            raise RequestError("notRequest", "'id' must be a String.")
        envelope = {k: v for k, v in data.items() if k not in ("@type", "id")}
        server = self.server
        jmap_request = request_from_json(envelope, server.config.limits, server.supported())
        accounts = server.access(self.user)
        result = await anyio.to_thread.run_sync(
            server.run_request, self.user, accounts, jmap_request, credential_of(self.websocket)
        )
        result["sessionState"] = session_for(self.websocket, server, self.user)["state"]
        response: dict[str, Any] = {"@type": "Response", **result}
        if request_id is not None:
            response["requestId"] = request_id
        await self.send(response)

    async def enable_push(self, data: dict[str, Any]) -> None:
        types = data.get("dataTypes")
        if types is not None and (
            not isinstance(types, list) or not all(isinstance(t, str) for t in types)
        ):
            raise RequestError("notRequest", "'dataTypes' must be an array of type names or null.")
        given = data.get("pushState")
        if given is not None and not isinstance(given, str):
            raise RequestError("notRequest", "'pushState' must be a String.")
        self.push_types = frozenset(types) if types is not None else None
        self.pushing = True
        # §4.3.5.2: with a pushState from before, tell the client at once if
        # anything changed since; a token is opaque, so every state is sent.
        states = await anyio.to_thread.run_sync(self.server.states, self.user)
        if given is not None and given != push_state(states):
            await self.push(states, states)

    async def push(
        self, changed: dict[str, dict[str, str]], states: dict[str, dict[str, str]]
    ) -> None:
        kept = {
            account: {
                t: s for t, s in types.items() if self.push_types is None or t in self.push_types
            }
            for account, types in changed.items()
        }
        kept = {account: types for account, types in kept.items() if types}
        if kept and self.pushing:
            await self.send({**state_change(kept), "pushState": push_state(states)})

    async def pump(self, listener: Any) -> None:
        """Forward hub events while push is enabled."""
        while True:
            changed = await listener.queue.get()
            if changed is ENDED:  # the credential was revoked or its password changed
                await self.websocket.close(code=1008, reason="credentials no longer valid")
                return
            if self.pushing:
                states = await anyio.to_thread.run_sync(self.server.states, self.user)
                await self.push(changed, states)


async def refuse(websocket: WebSocket, exc: AccountUnavailable) -> None:
    """Answer the handshake as an HTTP request would be answered (503 with
    Retry-After, so a client retries, or reaches the owning backend once routing
    moved), where the server can send a denial response; else close, which the
    handshake sees as 403."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(unavailable_response(exc))
    else:
        await websocket.close(code=1011)


@router.websocket(WEBSOCKET_PATH)
@router.websocket(WEBSOCKET_PATH.rstrip("/"))
async def websocket_endpoint(websocket: WebSocket) -> None:
    server = server_of(websocket)
    try:
        user = await authenticate(websocket, server.login)
    except Unauthorized:
        await websocket.close(code=1008)  # before accept: the handshake gets HTTP 403
        return
    try:
        await open_account_of(server, user)
    except AccountUnavailable as exc:
        await refuse(websocket, exc)
        return
    if SUBPROTOCOL not in websocket.scope.get("subprotocols", []):
        await websocket.close(code=1002)
        return
    await websocket.accept(subprotocol=SUBPROTOCOL)
    connection = Connection(websocket, server, user)
    listener = server.push.hub.subscribe(server.access(user), credential_of(websocket))
    pump = asyncio.create_task(connection.pump(listener))
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None:
                # §4.3.1: binary frames are not JMAP.
                await connection.error(RequestError("notJSON", "Use text frames."), None)
                continue
            await connection.handle(text)
    except WebSocketDisconnect:
        pass
    finally:
        pump.cancel()
        server.push.hub.unsubscribe(listener)
