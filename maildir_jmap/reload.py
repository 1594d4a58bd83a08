"""SIGHUP (``systemctl reload``): re-read the settings and apply what can change
without dropping a connection, saying in the log what was reloaded and what
needs a restart (issue 17; SIGHUP used to kill the process).

Reloaded: the log level, the users file, the TLS certificate and key (new
handshakes use them; open connections keep theirs), the failed-login limits,
/metrics' networks, the submission settings and the idle-close time. Anything
else that changed is named in a warning and applied at the next restart."""

from __future__ import annotations

import argparse
import logging
import ssl
from collections.abc import Callable
from dataclasses import fields, replace

from maildir_jmap.config import Config
from maildir_jmap.console import CliError
from maildir_jmap.server.server import Server

log = logging.getLogger(__name__)

RELOADABLE = (
    "log_level",
    "tls_cert",
    "tls_key",
    "max_failures_per_user",
    "max_failures_per_address",
    "metrics_from",
    "sending",
    "idle_close",
)
SETTING_NAMES = {
    "max_failures_per_user": "auth.max_failures_per_user",
    "max_failures_per_address": "auth.max_failures_per_address",
    "metrics_from": "server.metrics_from",
    "sending": "submission",
    "idle_close": "mail.idle_close",
    "log_level": "server.log_level",
    "tls_cert": "server.tls_cert",
    "tls_key": "server.tls_key",
}


class Reloader:
    """Everything a reload touches: how settings are read (the same way as at
    start), the running server, and uvicorn's TLS context."""

    def __init__(
        self,
        args: argparse.Namespace,
        settings: Callable[[argparse.Namespace], Config],
        server: Server,
        tls: ssl.SSLContext | None,
        set_log_level: Callable[[str], None],
    ) -> None:
        self.args = args
        self.settings = settings
        self.server = server
        self.tls = tls
        self.set_log_level = set_log_level

    def __call__(self) -> list[str]:
        """Reload; what was reloaded (also logged). Bad new settings keep the old."""
        old = self.server.config
        try:
            new = self.settings(self.args)
        except CliError as exc:
            log.error("reload refused, the running settings stay: %s", exc)
            return []
        done: list[str] = []
        changed = {f.name for f in fields(Config) if getattr(old, f.name) != getattr(new, f.name)}
        if self.tls is not None and new.tls_cert is not None and new.tls_key is not None:
            try:
                self.tls.load_cert_chain(new.tls_cert, new.tls_key)
                done.append(f"TLS certificate {new.tls_cert}")
            except (OSError, ssl.SSLError) as exc:
                log.error("reload: cannot use the new TLS certificate (%s); keeping the old", exc)
                new = replace(new, tls_cert=old.tls_cert, tls_key=old.tls_key)
        elif {"tls_cert", "tls_key"} & changed:
            log.warning("reload: turning TLS on or off needs a restart")
            new = replace(new, tls_cert=old.tls_cert, tls_key=old.tls_key)
        if self.server.users.refresh(force=True):
            done.append("users file")
        restart = sorted(changed - set(RELOADABLE))
        applied = replace(old, **{name: getattr(new, name) for name in RELOADABLE})
        self.server.reconfigure(applied)
        if "log_level" in changed:
            self.set_log_level(new.log_level)
        done += [SETTING_NAMES[n] for n in RELOADABLE if n in changed and not n.startswith("tls")]
        self.server.end_dead_credentials()
        log.info("reloaded: %s", ", ".join(done) if done else "nothing had changed")
        if restart:
            log.warning("changed, applied at the next restart: %s", ", ".join(restart))
        return done
