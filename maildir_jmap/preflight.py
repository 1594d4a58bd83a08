"""What ``serve`` and ``index`` check before they start, so that an admin's
mistake is one line naming the thing to fix, never a traceback from deep inside
(issue 17): the state directory, the Maildirs, the TLS files, the listening
socket. Each check raises ``CliError``."""

from __future__ import annotations

import errno
import os
import socket
import ssl
from pathlib import Path

from maildir_jmap.config import Config
from maildir_jmap.console import CliError, whoami
from maildir_jmap.users import Users


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def maildir(path: Path) -> None:
    """``path`` is a Maildir we can list: the directory, cur/, new/ and tmp/."""

    def listable(directory: Path) -> bool:
        try:
            os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            raise CliError(
                f"cannot read the Maildir {directory}: {_reason(exc)} (running as {whoami()}; "
                "run as the Maildir's owner, e.g. User= in the unit)"
            ) from None
        return True

    if not listable(path):
        raise CliError(f"{path} is not a directory")
    missing = [d for d in ("cur", "new", "tmp") if not listable(path / d)]
    if missing:
        # Watching an arbitrary tree (serve /tmp) would overflow inotify (issue 17).
        raise CliError(f"{path} is not a Maildir (no {', '.join(missing)})")


def maildirs(users: Users) -> None:
    """Every Maildir known before anyone logs in (embedded mode, a users file);
    those of Dovecot's users are found at login and a broken one answers 503."""
    for name in users.names():
        user = users.get(name)
        if user is not None and user.maildir.exists():
            maildir(user.maildir)


def tls(config: Config) -> None:
    """The certificate and key are there, readable and a pair."""
    if config.tls_cert is None or config.tls_key is None:
        return
    for key, path in (("tls_cert", config.tls_cert), ("tls_key", config.tls_key)):
        try:
            path.read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read server.{key} {path}: {_reason(exc)}") from None
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            config.tls_cert, config.tls_key
        )
    except (ssl.SSLError, ValueError) as exc:
        raise CliError(
            f"server.tls_cert {config.tls_cert} and server.tls_key {config.tls_key} "
            f"are not a PEM certificate chain and its key: {exc}"
        ) from None


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything is printed or indexed (a port in
    use used to be found only after the password and the session URL were shown)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CliError(f"cannot listen on {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        hint = ""
        if exc.errno == errno.EADDRINUSE:
            hint = " (another maildir-jmap, or something else, listens there; use --port)"
        elif exc.errno == errno.EACCES:
            hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        elif exc.errno == errno.EADDRNOTAVAIL:
            hint = " (no such address on this machine)"
        raise CliError(f"cannot listen on {host}:{port}: {_reason(exc)}{hint}") from None
    sock.set_inheritable(True)
    return sock
