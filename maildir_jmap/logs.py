"""Logging for the command line and for systemd's journal."""

from __future__ import annotations

import logging
import os


class JournalFormatter(logging.Formatter):
    """Under systemd (stderr is the journal): no timestamp (journald adds one) and
    a ``<priority>`` prefix so journald records each line's level (sd-daemon(3))."""

    PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3}

    def format(self, record: logging.LogRecord) -> str:
        priority = self.PRIORITIES.get(record.levelno, 2)
        text = super().format(record)
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler()
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


UVICORN_LOGGING: dict[str, object] = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {
        # No handlers of its own: its lines (bind errors, access lines) go through
        # ours, so under systemd they carry a journal priority too (issue 17).
        name: {"handlers": [], "propagate": True}
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
    },
}


def set_level(level: str) -> None:
    """Change the log level of everything at once (a reload)."""
    logging.getLogger().setLevel(level)
    for name in ("uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        logging.getLogger(name).setLevel(level)
    logging.getLogger(__name__).info("log level is now %s", level)
