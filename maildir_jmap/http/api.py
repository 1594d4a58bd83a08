"""The Session resource (RFC 8620 §2) and the API endpoint (§3): HTTP in and out;
the server room (server/) authenticates and runs."""

from __future__ import annotations

import asyncio
import logging
from contextlib import ExitStack
from functools import partial
from typing import Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Request
from starlette.requests import ClientDisconnect, HTTPConnection
from starlette.responses import Response

from maildir_jmap.core.dispatch import AccountAccess
from maildir_jmap.core.errors import RequestError
from maildir_jmap.core.request import parse_request
from maildir_jmap.core.session import build_session
from maildir_jmap.core.types import JSONObject
from maildir_jmap.http.auth import CHALLENGES, authenticate, credential_of
from maildir_jmap.http.streamed import StreamedAnswer, tail_of
from maildir_jmap.metrics import API_SECONDS
from maildir_jmap.server.accounts import AccountUnavailable
from maildir_jmap.server.execute import SlotsFull
from maildir_jmap.server.login import AuthServiceDown, Throttled, Unauthorized
from maildir_jmap.server.server import Server
from maildir_jmap.users import User

log = logging.getLogger(__name__)
router = APIRouter()

DEFAULT_PORTS = {"http": 80, "https": 443}
NO_CACHE = {"Cache-Control": "no-cache, no-store, must-revalidate"}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def problem_response(
    status: int, kind: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    """An RFC 7807 problem details response."""
    body = {"type": kind, "status": status, "detail": detail, **extra}
    return Response(orjson.dumps(body), status, headers, media_type="application/problem+json")


def unavailable_response(exc: AccountUnavailable) -> Response:
    """One user's account cannot be served here now (a broken Maildir, or another
    process owns it): 503, and a client retries."""
    return problem_response(503, "about:blank", str(exc), {"Retry-After": "30"})


def request_error_response(exc: RequestError) -> Response:
    body = exc.problem()
    return Response(orjson.dumps(body), exc.status, media_type="application/problem+json")


def unauthorized_response(exc: Unauthorized) -> Response:
    if isinstance(exc, Throttled):
        retry = {"Retry-After": str(int(exc.retry_after) + 1)}
        return problem_response(429, "about:blank", str(exc), retry, title="Too Many Requests")
    if isinstance(exc, AuthServiceDown):
        retry = {"Retry-After": "5"}
        return problem_response(503, "about:blank", str(exc), retry, title="Unavailable")
    response = problem_response(401, "about:blank", str(exc), title="Unauthorized")
    for challenge in CHALLENGES:
        response.raw_headers.append((b"www-authenticate", challenge.encode()))
    return response


def server_of(request: HTTPConnection) -> Server:
    server: Server = request.app.state.server
    return server


async def current_user(request: Request) -> User | Response:
    """The authenticated user, or the 401 response to send instead. Their account
    is opened here, in a worker thread: opening a large Maildir must never block
    the event loop, and so every other user's requests."""
    server = server_of(request)
    try:
        user = await authenticate(request, server.login)
    except Unauthorized as exc:
        return unauthorized_response(exc)
    await open_account_of(server, user)
    return user


async def open_account_of(server: Server, user: User) -> None:
    """Open (or find) the user's account off the event loop; AccountUnavailable
    (503) if their Maildir cannot be opened. An open account costs no thread hop:
    this runs before every request."""
    if not server.pool.is_open(user.name):
        await anyio.to_thread.run_sync(server.account, user)


def base_url(request: HTTPConnection, server: Server) -> str:
    if server.config.public_url:
        return server.config.public_url
    scope = request.scope
    scheme = scope.get("scheme", "http")
    if scheme.startswith("ws"):  # a WebSocket handshake: the Session is the http(s) one
        scheme = "http" + scheme.removeprefix("ws")
    # Starlette's request.base_url, without its URL objects (a fifth of the cost
    # of stating the Session in every response): Host, else the socket's address.
    host = request.headers.get("host")
    if not host:
        address, port = scope.get("server") or ("localhost", None)
        host = address if port in (None, DEFAULT_PORTS[scheme]) else f"{address}:{port}"
    root = scope.get("app_root_path", scope.get("root_path", ""))
    return f"{scheme}://{host}{root}".rstrip("/")


def session_for(
    request: HTTPConnection,
    server: Server,
    user: User,
    accounts: dict[str, AccountAccess] | None = None,
) -> JSONObject:
    """The Session (RFC 8620 §2); ``accounts``: the user's, when already found."""
    base = base_url(request, server)
    capabilities, digest = server.capabilities(base)
    return build_session(
        username=user.name,
        base_url=base,
        capabilities=capabilities,
        accounts=(server.access(user) if accounts is None else accounts).values(),
        digest_of_capabilities=digest,
    )


@router.get("/jmap/session")
@router.get("/.well-known/jmap")  # §2.2 autodiscovery: served directly, no redirect
async def session(request: Request) -> Response:
    server = server_of(request)
    user = await current_user(request)
    if isinstance(user, Response):
        return user
    return json_response(session_for(request, server, user), headers=NO_CACHE)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to exceed ``limit`` (§3.6.1 limit)."""
    too_large = RequestError(
        "limit",
        "The request is larger than the server is willing to process.",
        limit="maxSizeRequest",
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def content_type_problem(value: str | None) -> RequestError | None:
    """§3.1: the request MUST be ``application/json``; §3.6.1 notJSON is "the
    content type of the request was not application/json". Parameters (charset)
    are fine. A request with no Content-Type at all is judged by its body (HTTP
    lets a recipient examine the data), so minimal scripts keep working."""
    if value is None:
        return None
    media = value.partition(";")[0].strip().lower()
    if media == "application/json":
        return None
    return RequestError(
        "notJSON",
        f"The request's Content-Type is {value.strip()!r}; the JMAP API takes "
        "application/json (with curl: -H 'Content-Type: application/json').",
    )


async def api(request: Request) -> Response:
    server = server_of(request)
    user = await current_user(request)
    if isinstance(user, Response):
        return user
    limits = server.config.limits
    not_json = content_type_problem(request.headers.get("content-type"))
    if not_json is not None:
        return request_error_response(not_json)
    slot = ExitStack()  # held until the calls have run, however long the answer takes
    try:
        slot.enter_context(server.requests.take(user.name, limits.maxConcurrentRequests))
        try:
            body = await read_body(request, limits.maxSizeRequest)
        except ClientDisconnect:
            slot.close()
            log.debug("client went away while sending a request")
            return Response(status_code=400)  # nobody is there to read it
        jmap_request = parse_request(body, limits, server.supported())
        accounts = server.access(user)
    except SlotsFull:
        too_many = RequestError(
            "limit",
            f"At most {limits.maxConcurrentRequests} concurrent requests per user.",
            status=429,
            limit="maxConcurrentRequests",
        )
        return request_error_response(too_many)
    except RequestError as exc:
        slot.close()
        return request_error_response(exc)
    answer = StreamedAnswer(asyncio.get_running_loop())
    held = slot.pop_all()

    async def run() -> JSONObject:
        with held, API_SECONDS.time():
            return await anyio.to_thread.run_sync(
                partial(
                    server.run_request,
                    user,
                    accounts,
                    jmap_request,
                    credential_of(request),
                    emit=answer.emit,
                )
            )

    def session_state() -> str:
        return str(session_for(request, server, user, accounts)["state"])

    try:
        return await answer.response(asyncio.ensure_future(run()), tail_of(session_state))
    except RequestError as exc:
        return request_error_response(exc)


# A plain Starlette route, not a FastAPI one: the endpoint takes the request and
# nothing else, and FastAPI's dependency and response handling around it was a
# sixth of the event loop's time per request (py-spy, 50 full messages).
router.add_route("/jmap/api/", api, methods=["POST"])
router.add_route("/jmap/api", api, methods=["POST"], include_in_schema=False)
