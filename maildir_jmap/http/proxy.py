"""Behind a reverse proxy: believe X-Forwarded-Proto, -Host and -For only from
the configured proxies, and rewrite the ASGI scope so that everything after
(Session URLs, cookies' Secure flag, login throttling, Dovecot's "secured" and
``rip``) sees the client's view. Requests from anywhere else keep their own.

With ``public_url`` set, the admin has said where clients reach us: -Proto and
-Host are then ignored even from a proxy (issue 17), and only -For is used."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    def __init__(self, app: ASGIApp, proxies: Iterable[str], public_url: bool = False) -> None:
        self.app = app
        self.networks: list[Network] = [ipaddress.ip_network(p, strict=False) for p in proxies]
        self.host_and_proto = not public_url

    def _trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] in ("http", "websocket") and client and self._trusted(client[0]):
            scope = dict(scope)
            headers = {k.lower(): v for k, v in scope["headers"]}
            proto = headers.get(b"x-forwarded-proto", b"").decode("latin-1").split(",")[0].strip()
            if proto in ("http", "https") and self.host_and_proto:
                secure = proto == "https"
                if scope["type"] == "websocket":
                    scope["scheme"] = "wss" if secure else "ws"
                else:
                    scope["scheme"] = proto
            host = headers.get(b"x-forwarded-host", b"").split(b",")[0].strip()
            if host and self.host_and_proto:
                scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"host"]
                scope["headers"].append((b"host", host))
            forwarded = headers.get(b"x-forwarded-for", b"").decode("latin-1")
            hops = [h.strip() for h in forwarded.split(",") if h.strip()]
            # The nearest hop not itself a trusted proxy is the client.
            for hop in reversed(hops):
                if not self._trusted(hop):
                    scope["client"] = (hop, 0)
                    break
        await self.app(scope, receive, send)
