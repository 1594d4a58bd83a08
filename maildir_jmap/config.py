"""Server settings: one frozen ``Config`` (defaults = the embedded mode)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from maildir_jmap.core.capabilities import CoreLimits
from maildir_jmap.delivery.scheduler import SendingSettings


def default_state_dir() -> Path:
    """Per-user, outside any Maildir: ``$XDG_STATE_HOME/maildir-jmap``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "maildir-jmap"


@dataclass(frozen=True)
class Config:
    state_dir: Path = field(default_factory=default_state_dir)
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None
    """Base URL for Session URLs; None: built from each request's scheme and host."""
    limits: CoreLimits = field(default_factory=CoreLimits)
    lock_timeout: float = 30.0
    """Seconds a request waits for its account before answering serverUnavailable."""
    gzip_minimum_size: int = 500
    layout: str = "auto"
    """Maildir layout: "auto" (detected per Maildir), "maildir++" or "fs"."""
    watch: bool = True
    """Follow changes others make to the Maildir as they happen (inotify)."""
    rescan_interval: float = 300.0
    """Seconds between full rescans that catch anything the watcher missed."""
    upload_expiry: float = 24 * 3600.0
    """Seconds an upload no Email refers to is kept (swept at start-up and with each
    periodic rescan)."""
    push_allow_private_targets: bool = False
    """Let PushSubscription URLs point at loopback, private or link-local addresses
    (off: such pushes could reach internal services, RFC 8620 §8.6)."""
    push_allow_http: bool = False
    """Accept http:// PushSubscription URLs (RFC 8620 §7.2 requires https)."""
    push_subject: str | None = None
    """VAPID ``sub`` contact (RFC 8292 §2.1), a mailto: or https: URI; None: the
    public URL if set, else mailto:postmaster@ this host's name."""
    push_max_lifetime: float = 7 * 24 * 3600.0
    vapid_key_file: Path | None = None
    """The VAPID private key (PEM) Web Push is signed with; None: state_dir's own.
    Backends sharing users share this file, so a subscription made on one is
    valid on the others."""
    """Longest PushSubscription lifetime; also the default (RFC 8620 §7.2)."""
    sending: SendingSettings = field(default_factory=SendingSettings)
    """EmailSubmission: the smarthost (default: port 25 on this host, as a local
    Postfix or Exim accepts it) and the limits advertised in the Session."""
    mail_domain: str | None = None
    """Domain for a login that is not an address (alice -> alice@domain) when the
    users file lists no addresses; None: this host's name."""
    sieve_dir: str | None = None
    """Pigeonhole's personal Sieve directory for each user, e.g. ``{home}/sieve``
    (``{home}`` is the Maildir's parent, ``{user}`` the login). Set it to offer
    VacationResponse (written as a Sieve script); None: not offered."""
    sieve_active: str = "{home}/.dovecot.sieve"
    """The active-script link Pigeonhole runs (its ``active=`` setting)."""
    mailbox_roles: dict[str, str] | None = None
    """Top-level folder name -> role; None: from Dovecot's special_use config
    (``doveconf -n``) when it can be read at start-up, else the well-known names."""
    dovecot_config: Path | None = None
    """Dovecot's dovecot.conf for ``doveconf``; None: doveconf's own default
    (/etc/dovecot/dovecot.conf). Roles, autocreated mailboxes, quota, the Sieve
    location, listescape and the auth sockets come from it."""
    tls_cert: Path | None = None
    """Serve HTTPS directly with this certificate chain (PEM) and ``tls_key``."""
    tls_key: Path | None = None
    metrics_from: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    """Networks that may read /metrics (Prometheus)."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses of reverse proxies whose X-Forwarded-Proto/-For/Host are believed."""
    auth_backend: str = "users-file"
    """"users-file" (our own argon2 file) or "dovecot" (Dovecot's auth sockets)."""
    users_file: Path | None = None
    dovecot_auth_socket: Path | None = None
    dovecot_userdb_socket: Path | None = None
    """Dovecot's auth-client and auth-userdb sockets; None: in Dovecot's base_dir
    (``doveconf``), /run/dovecot when there is no config to read."""
    dovecot_service: str = "jmap"
    """The service name Dovecot's passdb/userdb see (for per-service rules)."""
    mail_location: str | None = None
    """Fallback when neither the userdb (``mail``) nor Dovecot's config
    (``mail_location``) gives one: a location such as ``maildir:~/Maildir``."""
    max_failures_per_user: int = 5
    """Failures for one user name in 15 minutes after which each further failed
    answer for it is held 2, 4, 8, then 15 s (the right password never is)."""
    max_failures_per_address: int = 20
    """Failures from one client address in 15 minutes before it gets 429; fewer
    hold its next attempts 2, 4, 8, then 15 s, as Dovecot's auth penalty does."""
    throttle_logins: bool = True
    """Our own login throttling; off: leave it to Dovecot's auth penalty (which
    sees the client's address as ``rip``), for the Dovecot backend."""
    log_level: str = "INFO"
    """DEBUG, INFO, WARNING or ERROR (``--log-level`` wins; SIGHUP re-reads it)."""
    idle_close: float = 1800.0
    """Seconds without requests after which an account (its watcher, index and
    caches) is closed; it reopens on the next request. 0: never."""
    account_state: str | None = None
    """Where each account's state (index, journal, views, uploads, outbox) lives,
    e.g. ``{home}/.maildir-jmap`` (``{home}``: the userdb's home, ``{user}``: the
    login), so moving a user's home to another backend moves its ids, states and
    change log along; ``state_dir/accounts/<id>`` then links to it. None: there."""
    route_backends: tuple[str, ...] = ()
    """``HOST:PORT`` of every backend users are spread over (server/routing.py);
    empty: no route lookup is served."""
    route_port: int = 8080
    """The JMAP port of a backend Dovecot's passdb names by ``host=`` alone."""


def problems(config: Config) -> list[str]:
    """What is wrong with a Config, each named by its setting (the TOML key), for
    the command line and the config file alike (issue 17: one schema)."""
    import ipaddress
    from urllib.parse import urlsplit

    found: list[str] = []
    if not 1 <= config.port <= 65535:
        found.append(f"server.port {config.port} is not a port (1-65535)")
    if config.public_url is not None:
        parts = urlsplit(config.public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            found.append(f"server.public_url {config.public_url!r} must be http(s)://HOST[:PORT]")
        elif config.public_url.endswith("/"):
            found.append(f"server.public_url {config.public_url!r} must not end in '/'")
    for key, networks in (
        ("server.metrics_from", config.metrics_from),
        ("server.trusted_proxies", config.trusted_proxies),
    ):
        for network in networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                found.append(f"{key}: {network!r} is not an address or network (CIDR)")
    positive = {
        "mail.rescan_interval": config.rescan_interval,
        "mail.upload_expiry": config.upload_expiry,
        "push.max_lifetime": config.push_max_lifetime,
    }
    found += [f"{key} must be more than 0, not {v}" for key, v in positive.items() if v <= 0]
    if config.idle_close < 0:
        found.append(f"mail.idle_close must be 0 (never) or more, not {config.idle_close}")
    for key, count in (
        ("auth.max_failures_per_user", config.max_failures_per_user),
        ("auth.max_failures_per_address", config.max_failures_per_address),
    ):
        if count < 1:
            found.append(f"{key} must be 1 or more, not {count}")
    from maildir_jmap.server.routing import parse_backend

    found += [
        f"route.backends: {b!r} is not HOST:PORT"
        for b in config.route_backends
        if not parse_backend(b)
    ]
    if not 1 <= config.route_port <= 65535:
        found.append(f"route.port {config.route_port} is not a port (1-65535)")
    return found
