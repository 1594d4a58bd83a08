"""Which backend serves a user (issue 20), for nginx's ``auth_request``.

A user is pinned to one backend the way Dovecot's proxies pin them: the passdb's
``host`` (and ``port``, else ``route.port``) when Dovecot's auth gives one, else
rendezvous hashing (highest random weight) of the login over ``route.backends``.
Every process computes the same answer without sharing anything, and adding or
removing a backend moves only the users that backend gains or loses. The answer
goes into nginx's ``proxy_pass``, so a host that is not a plain host name or
address literal is refused (logged) and the hash decides instead.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

_HOST_NAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*"
)


def host_literal(text: str) -> str | None:
    """``text`` as it goes before ``:port`` (IPv6 in brackets), None if it is
    neither a host name nor an address."""
    bare = text.strip().removeprefix("[").removesuffix("]")
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        return bare if _HOST_NAME.fullmatch(bare) else None
    return f"[{address}]" if address.version == 6 else str(address)


def parse_backend(text: str) -> str | None:
    """A configured backend ``HOST:PORT`` in canonical form, None if malformed."""
    host, sep, port = text.strip().rpartition(":")
    literal = host_literal(host) if sep else None
    if literal is None or not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    return f"{literal}:{int(port)}"


@dataclass(frozen=True)
class Routing:
    backends: tuple[str, ...]
    """Canonical ``HOST:PORT`` of every backend the hash may pick."""
    port: int
    """The JMAP port of a backend the passdb names by ``host`` alone."""

    def backend_for(self, login: str, fields: Mapping[str, str]) -> str | None:
        """Where ``login`` is served: the passdb's choice, else the hash's; None
        when neither names one (no ``host`` and no backends configured)."""
        named = self._named(login, fields)
        return named if named is not None else self.hashed(login)

    def hashed(self, login: str) -> str | None:
        if not self.backends:
            return None
        return max(self.backends, key=lambda backend: _weight(backend, login))

    def _named(self, login: str, fields: Mapping[str, str]) -> str | None:
        if not fields.get("host"):
            return None
        host = host_literal(fields["host"])
        port = fields.get("port", str(self.port))
        if host is None or not port.isdigit() or not 1 <= int(port) <= 65535:
            log.warning(
                "passdb routes %s to %r port %r: not a host and port; hashing",
                login,
                fields["host"],
                port,
            )
            return None
        return f"{host}:{int(port)}"


def _weight(backend: str, login: str) -> bytes:
    return hashlib.sha256(f"{backend}\0{login}".encode()).digest()
