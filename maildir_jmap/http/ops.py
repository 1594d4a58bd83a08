"""Operations endpoints: ``/healthz`` for load balancers and systemd watchers,
``/metrics`` for Prometheus (only to the configured networks)."""

from __future__ import annotations

import ipaddress

from fastapi import APIRouter, Request
from starlette.responses import Response

from maildir_jmap.http.api import json_response, problem_response, state_of
from maildir_jmap.http.state import AppState
from maildir_jmap.metrics import StateCollector, exposition
from maildir_jmap.store.outbox import Outbox

router = APIRouter()


def gauges(state: AppState) -> dict[str, float]:
    accounts = state.open_accounts()
    subscriptions = state.subscriptions.all() if state.subscriptions is not None else []
    return {
        "open_accounts": len(accounts),
        "index_emails": sum(len(a.index.emails) for a in accounts),
        "index_mailboxes": sum(len(a.index.mailboxes) for a in accounts),
        "push_listeners": state.hub.count(),
        "push_subscriptions": len(subscriptions),
        "outbox_jobs": sum(len(Outbox(a.state_dir).jobs()) for a in accounts),
        "watchers": state.pool.watcher_count(),
        "unreadable_files": sum(len(a.unreadable) for a in accounts),
    }


@router.get("/healthz")
async def healthz(request: Request) -> Response:
    state = state_of(request)
    return json_response({"status": "ok", "openAccounts": len(state.open_accounts())})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    state = state_of(request)
    client = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        address = None
    allowed = [ipaddress.ip_network(n, strict=False) for n in state.config.metrics_from]
    if address is None or not any(address in network for network in allowed):
        return problem_response(403, "about:blank", "metrics are not served to this address")
    body = exposition(StateCollector(lambda: gauges(state)))
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
