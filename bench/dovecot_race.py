"""``python -m bench dovecot-race [--seconds N] [--layout maildir++,fs] [--output BENCHMARKS.md]``:
Dovecot against itself, as a baseline for the soak's "saves racing a folder
rename" column. One IMAP session APPENDs into four folders while a second
session RENAMEs them away and back; Dovecot's log is then searched for the lines
bench/soak.py counts apart (a save whose folder moved under it). No JMAP server
takes part: this is what Dovecot logs when it races itself."""

from __future__ import annotations

import argparse
import datetime
import imaplib
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.machine import ROOT, commit, machine, write_marked
from bench.soak import SAVE_RACE
from bench.soak_actors import message

FOLDERS = ("F0", "F1", "F2", "F3")


def race(layout: str, seconds: float, workdir: Path) -> dict[str, int]:
    sys.path.insert(0, str(ROOT))
    from tests.dovecot import Dovecot

    maildir = workdir / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    dovecot = Dovecot(maildir, workdir / "dovecot", layout=layout).start()
    counts = {"appends": 0, "renames": 0, "refused": 0, "stalls": 0}
    try:
        setup = dovecot.imap()
        for name in FOLDERS:
            setup.create(name)
        setup.logout()
        stop = time.monotonic() + seconds

        def session() -> imaplib.IMAP4:
            client = dovecot.imap()
            client.sock.settimeout(5)
            return client

        def loop(step: Callable[[imaplib.IMAP4], None]) -> None:
            client = session()
            while time.monotonic() < stop:
                try:
                    step(client)
                except (OSError, imaplib.IMAP4.abort):
                    counts["stalls"] += 1  # Dovecot sat on a lock: a new session goes on
                    client = session()

        def save(client: imaplib.IMAP4) -> None:
            folder = random.choice(FOLDERS)
            mid = f"race-{counts['appends']}@bench"
            kind, _ = client.append(folder, None, None, message(mid, "race"))
            counts["appends"] += 1
            counts["refused"] += kind != "OK"

        def rename(client: imaplib.IMAP4) -> None:
            name = random.choice(FOLDERS)
            client.rename(name, name + "-moved")
            client.rename(name + "-moved", name)
            counts["renames"] += 2

        threads = [threading.Thread(target=loop, args=(step,)) for step in (save, rename)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        dovecot.stop()
    log = (workdir / "dovecot" / "dovecot.log").read_text(errors="replace")
    complaints = [ln for ln in log.splitlines() if "Warning:" in ln or "Error:" in ln]
    counts["save_races"] = sum(1 for ln in complaints if SAVE_RACE.search(ln))
    counts["other_complaints"] = len(complaints) - counts["save_races"]
    return counts


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench dovecot-race", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--layout", default="maildir++,fs")
    parser.add_argument("--output", help="also write the figures into this BENCHMARKS.md")
    args = parser.parse_args(argv)
    lines = []
    for layout in args.layout.split(","):
        counts = race(layout, args.seconds, Path(tempfile.mkdtemp(prefix="mj-race-")))
        lines.append(
            f"| {layout} | {args.seconds:.0f} s | {counts['appends']} | {counts['renames']} "
            f"| {counts['refused']} | {counts['stalls']} | {counts['save_races']} "
            f"| {counts['other_complaints']} |"
        )
        print(lines[-1])
    if args.output:
        body = (
            "## Dovecot racing itself (`python -m bench dovecot-race`)\n\n"
            'The baseline for the soak\'s "saves racing a folder rename": two IMAP sessions '
            "of one Dovecot, one APPENDing into four folders, the other RENAMEing them away "
            "and back; no JMAP server involved. "
            f"Machine: {machine()}; commit {commit()}; {datetime.date.today().isoformat()}.\n\n"
            "| layout | time | APPENDs | RENAMEs | APPENDs refused | sessions stalled (5 s) "
            "| save-race errors logged | other warnings |\n|---|---|---|---|---|---|---|---|\n"
            + "\n".join(lines)
        )
        write_marked(Path(args.output), "dovecot-race", body)
    return 0
