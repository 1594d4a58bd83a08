"""What the command line says and where it keeps things: ``CliError`` (a problem
the user can fix, printed without a traceback), ``say``, the state directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from maildir_jmap.config import default_state_dir


class CliError(Exception):
    """A problem the user can fix; printed without a traceback, exit status 2."""


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def state_dir_of(args: argparse.Namespace) -> Path:
    path = Path(args.state_dir).expanduser() if args.state_dir else default_state_dir()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
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
