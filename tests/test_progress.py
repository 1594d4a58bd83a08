"""How long work reports itself (progress.py, console.ProgressBar)."""

from __future__ import annotations

import io
import logging

import pytest

from maildir_jmap.console import ProgressBar
from maildir_jmap.progress import progress_line


def test_progress_says_rate_and_time_left() -> None:
    assert progress_line(3000, 45000, 2.0) == "3000/45000 messages, 1500/s, 28 s left"
    assert progress_line(1000, 100000, 10.0).endswith("100/s, 16 min 30 s left")
    assert progress_line(10, 10, 1.0) == "10/10 messages, 10/s"
    assert progress_line(0, 10, 0.0, width=4) == "[....] 0/10 messages, 0/s"


def test_log_lines_do_not_run_into_the_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 17: the bar is cleared before a log line and drawn again after it."""
    terminal = io.StringIO()
    terminal.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr("sys.stderr", terminal)
    handler = logging.StreamHandler(terminal)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        bar = ProgressBar()
        bar(500, 1000)
        logging.getLogger("test").warning("a file could not be read")
        bar(1000, 1000)
        bar.close()
    finally:
        root.removeHandler(handler)
    lines = terminal.getvalue().split("\n")
    assert lines[0].endswith("\x1b[Ka file could not be read")
    assert "500/1000 messages" in lines[1]  # drawn again under the log line
    assert handler.stream is terminal  # given back
