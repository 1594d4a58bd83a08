"""How far long work has come, in words: shared by the command line's bar and
the server's log lines."""

from __future__ import annotations


def progress_line(done: int, total: int, elapsed: float, width: int = 0) -> str:
    """``[####....] 1200/45000 messages, 1500/s, 29 s left`` (no bar: width 0)."""
    rate = done / elapsed if elapsed > 0 else 0.0
    left = (total - done) / rate if rate > 0 else 0.0
    bar = ""
    if width:
        filled = int(width * done / total) if total else width
        bar = f"[{'#' * filled}{'.' * (width - filled)}] "
    eta = f", {_duration(left)} left" if done < total and rate > 0 else ""
    return f"{bar}{done}/{total} messages, {rate:.0f}/s{eta}"


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
