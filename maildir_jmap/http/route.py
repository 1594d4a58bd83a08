"""``GET /jmap/route``: which backend serves the caller (issue 20), for nginx's
``auth_request`` in front of several backends (deploy/nginx-backends.conf).

nginx sends the client's Authorization header on a subrequest; a 2xx lets the
request through, 401 and 403 reach the client, anything else becomes nginx's 500.
So: valid credentials get 204 with ``X-Backend: HOST:PORT`` (server/routing.py);
wrong ones get 401 with our challenges, as from the API. When no verdict can be
given here (this process throttles the address, or Dovecot's auth does not
answer) a Basic login is routed by its name anyway, and the backend, which checks
every request itself, answers 429 or 503 with Retry-After where the client sees
it. Served only while ``route.backends`` is set; unknown otherwise (404).
"""

from __future__ import annotations

import logging

import anyio.to_thread
from fastapi import APIRouter, Request
from starlette.responses import Response

from maildir_jmap.dovecot_auth import AuthUnavailable
from maildir_jmap.http.api import problem_response, server_of, unauthorized_response
from maildir_jmap.http.auth import authenticate, basic_login
from maildir_jmap.server.login import AuthServiceDown, Throttled, Unauthorized
from maildir_jmap.server.server import Server

log = logging.getLogger(__name__)
router = APIRouter()
BACKEND_HEADER = "X-Backend"


@router.get("/jmap/route")
async def route(request: Request) -> Response:
    server = server_of(request)
    if server.routing is None:
        return problem_response(404, "about:blank", "Not Found")
    name = await login_of(request, server)
    if isinstance(name, Response):
        return name
    try:
        backend = await anyio.to_thread.run_sync(server.backend_for, name)
    except AuthUnavailable as exc:
        log.warning("no passdb answer routing %s (%s): hashing", name, exc)
        backend = server.routing.hashed(name)
    return Response(status_code=204, headers={BACKEND_HEADER: backend or ""})


async def login_of(request: Request, server: Server) -> str | Response:
    """The user to route, or the 401 to send nginx."""
    try:
        return (await authenticate(request, server.login)).name
    except (Throttled, AuthServiceDown) as exc:
        name = basic_login(request)
        return name if name is not None else unauthorized_response(Unauthorized(str(exc)))
    except Unauthorized as exc:
        return unauthorized_response(exc)
