"""Readiness, as opposed to liveness (``/healthz``): can this process serve a
login now? The auth backend answers (Dovecot's auth sockets, or a readable
users file), the state directory takes writes, and accounts open (the one
user's of the embedded mode; else none failed the last time it was tried)."""

from __future__ import annotations

import contextlib
import logging
import tempfile

from maildir_jmap.server.accounts import AccountUnavailable
from maildir_jmap.server.server import Server

log = logging.getLogger(__name__)


def readiness(server: Server) -> dict[str, str]:
    """Each check -> "ok" or why not (blocking: call it from a worker thread)."""
    checks = {"auth": server.users.ready() or "ok"}
    try:
        with tempfile.NamedTemporaryFile(dir=server.config.state_dir, prefix=".ready."):
            pass
        checks["state"] = "ok"
    except OSError as exc:
        checks["state"] = f"the state directory does not take writes: {exc.strerror or exc}"
    names = server.users.names()
    if len(names) == 1 and not server.pool.is_open(names[0]):
        with contextlib.suppress(AccountUnavailable):  # recorded in pool.failures
            server.open_account(names[0])
    failed = dict(server.pool.failures)
    if failed:
        first = sorted(failed)[0]
        checks["accounts"] = f"{len(failed)} cannot be opened ({first}: {failed[first]})"
    else:
        checks["accounts"] = "ok"
    return checks
