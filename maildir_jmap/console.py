"""What the command line says and where it keeps things: ``CliError`` (a problem
the user can fix, printed without a traceback), ``say``, the state directory."""

from __future__ import annotations

import argparse
import logging
import os
import pwd
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

from maildir_jmap.config import default_state_dir
from maildir_jmap.progress import progress_line


class CliError(Exception):
    """A problem the user can fix; printed without a traceback, exit status 2."""


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def state_dir_of(args: argparse.Namespace) -> Path:
    """``--state-dir``, else the default (XDG state), made if missing and writable."""
    if args.state_dir:
        return writable_state_dir(Path(args.state_dir).expanduser())
    try:
        path = default_state_dir()
    except (RuntimeError, KeyError):  # no $HOME and no passwd entry
        raise CliError(NO_HOME) from None
    return writable_state_dir(path)


NO_HOME = "no state directory: $HOME is not set; give --state-dir or MAILDIR_JMAP_SERVER_STATE_DIR"


def user_name(uid: int) -> str:
    """The login name of ``uid``, or the number when the system has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def whoami() -> str:
    return user_name(os.geteuid())


def writable_state_dir(path: Path) -> Path:
    """``path`` exists (made 0700 if missing) and we can write in it (issue 17:
    an unwritable one was four chained tracebacks)."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test."):
            pass
    except OSError as exc:
        hint = ""
        home = os.environ.get("HOME")
        if not home or path.is_relative_to(home):
            hint = " (give --state-dir or MAILDIR_JMAP_SERVER_STATE_DIR)"
        raise CliError(
            f"the state directory {path} is not writable by {whoami()}: {exc.strerror or exc}{hint}"
        ) from None
    return path.resolve()


def first_line(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read password file {path}: {exc.strerror}") from None
    line = text.splitlines()[0] if text else ""
    if not line:
        raise CliError(f"password file {path} is empty")
    return line


class ProgressBar:
    """A one-line progress bar on stderr (only when it is a terminal), with the
    rate and the time left. Log lines written while it shows clear it first and
    draw it again after, so the two never run into each other (issue 17)."""

    def __init__(self) -> None:
        self.shown = False
        self.started = time.monotonic()
        self.line = ""
        self._wrapped: list[logging.StreamHandler[Any]] = []

    def __call__(self, done: int, total: int) -> None:
        if not sys.stderr.isatty() or total == 0:
            return
        if not self.shown:
            self._wrap_log_handlers()
        self.line = progress_line(done, total, time.monotonic() - self.started, width=30)
        sys.stderr.write("\r\x1b[K" + self.line)
        sys.stderr.flush()
        self.shown = True

    def _wrap_log_handlers(self) -> None:
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr:
                handler.setStream(_AroundBar(sys.stderr, self))
                self._wrapped.append(handler)

    def close(self) -> None:
        for handler in self._wrapped:
            handler.setStream(sys.stderr)
        self._wrapped.clear()
        if self.shown:
            sys.stderr.write("\n")


class _AroundBar:
    """A log handler's stream while a bar shows: clear the bar, write, redraw."""

    def __init__(self, stream: TextIO, bar: ProgressBar) -> None:
        self.stream = stream
        self.bar = bar

    def write(self, text: str) -> int:
        self.stream.write("\r\x1b[K" + text + (self.bar.line if text.endswith("\n") else ""))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()
