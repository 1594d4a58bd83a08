"""Running the server as a service: users from the configured backend, uvicorn
with TLS when configured, and systemd's readiness protocol (``Type=notify``:
``READY=1`` once the accounts are open and the socket listens, ``STOPPING=1``
on SIGTERM, after which open streams get a few seconds and journals are
flushed by the app's lifespan)."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable

import uvicorn

from maildir_jmap.config import Config
from maildir_jmap.dovecot_auth import DovecotUsers, Passdb, Userdb, auth_sockets
from maildir_jmap.dovecot_config import DovecotConfig, parse_mail_location
from maildir_jmap.users import UserDirectory, Users, load_users_file

log = logging.getLogger(__name__)


def sd_notify(message: str) -> bool:
    """Send ``message`` to systemd's notify socket, if we run under one."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError as exc:
        log.warning("cannot notify systemd at %s: %s", address, exc)
        return False
    return True


def users_for(
    config: Config, embedded: Callable[[], Users], dovecot: DovecotConfig | None = None
) -> Users:
    """The configured user directory; ``embedded`` makes the one-user default.
    With Dovecot's auth, its sockets, mail location and per-user settings come
    from ``dovecot`` (its effective config) unless our config names them."""
    if config.auth_backend == "dovecot":
        for location in (config.mail_location, dovecot.mail_location if dovecot else ""):
            if location:
                parse_mail_location(location)  # refused keys stop the start
        client, userdb = auth_sockets(config, dovecot)
        return DovecotUsers(
            Passdb(client, config.dovecot_service),
            Userdb(userdb, config.dovecot_service),
            config.mail_location,
            dovecot,
        )
    if config.users_file is not None:
        return UserDirectory(load_users_file(config.users_file))
    return embedded()


class NotifyingServer(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            sd_notify("READY=1\nSTATUS=serving JMAP")

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        sd_notify("STOPPING=1")
        await super().shutdown(sockets)


def run(config: Config, users: Users, log_level: str) -> None:
    from maildir_jmap.http.app import create_app

    app = create_app(config, users)
    server_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level=log_level.lower(),
        # Event streams never end by themselves: a few seconds on SIGTERM, then
        # they are closed; the lifespan stops watchers and flushes journals.
        timeout_graceful_shutdown=3,
        ssl_certfile=str(config.tls_cert) if config.tls_cert else None,
        ssl_keyfile=str(config.tls_key) if config.tls_key else None,
        # X-Forwarded-* are judged by the app against trusted_proxies (http/proxy.py).
        proxy_headers=False,
        server_header=False,
    )
    NotifyingServer(server_config).run()
