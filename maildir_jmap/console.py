"""What the command line says and where it keeps things: ``CliError`` (a problem
the user can fix, printed without a traceback), ``say``, the state directory."""

from __future__ import annotations

import argparse
import os
import pwd
import sys
import tempfile
from pathlib import Path

from maildir_jmap.config import default_state_dir


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
        raise CliError(
            "no state directory: $HOME is not set; give --state-dir or "
            "MAILDIR_JMAP_SERVER_STATE_DIR"
        ) from None
    return writable_state_dir(path)


def whoami() -> str:
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


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
    """A one-line progress bar on stderr (only when it is a terminal)."""

    def __init__(self) -> None:
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if not sys.stderr.isatty() or total == 0:
            return
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} messages")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
