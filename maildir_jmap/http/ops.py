"""Operations endpoints: ``/healthz`` (liveness: the process answers) and
``/readyz`` (readiness: logins can be served now, server/readiness.py) for
load balancers and monitors, ``/metrics`` for Prometheus (only to the
configured networks)."""

from __future__ import annotations

import ipaddress

import anyio.to_thread
from fastapi import APIRouter, Request
from starlette.responses import Response

from maildir_jmap.http.api import json_response, problem_response, server_of
from maildir_jmap.metrics import StateCollector, exposition
from maildir_jmap.server.readiness import readiness
from maildir_jmap.server.server import Server
from maildir_jmap.store.outbox import Outbox

router = APIRouter()


def gauges(server: Server) -> dict[str, float]:
    accounts = server.pool.open_accounts()
    subscriptions = server.push.subscriptions.all()
    return {
        "open_accounts": len(accounts),
        "index_emails": sum(len(a.index.emails) for a in accounts),
        "index_mailboxes": sum(len(a.index.mailboxes) for a in accounts),
        "push_listeners": server.push.hub.count(),
        "push_subscriptions": len(subscriptions),
        "outbox_jobs": sum(len(Outbox(a.state_dir).jobs()) for a in accounts),
        "watchers": server.pool.watcher_count(),
        "unreadable_files": sum(len(a.unreadable) for a in accounts),
    }


@router.get("/healthz")
async def healthz(request: Request) -> Response:
    server = server_of(request)
    return json_response({"status": "ok", "openAccounts": len(server.pool.open_accounts())})


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    """200 when every check is "ok", else 503 with the checks that are not."""
    server = server_of(request)
    checks = await anyio.to_thread.run_sync(readiness, server)
    ready = all(value == "ok" for value in checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    response = json_response(body)
    if not ready:
        response.status_code = 503
        response.headers["Retry-After"] = "5"
    return response


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    server = server_of(request)
    client = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        address = None
    allowed = [ipaddress.ip_network(n, strict=False) for n in server.config.metrics_from]
    if address is None or not any(address in network for network in allowed):
        return problem_response(403, "about:blank", "metrics are not served to this address")
    body = exposition(StateCollector(lambda: gauges(server)))
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
