"""SIGKILL in the middle of write bursts (issue 14): a writer process making
random keyword changes, moves, creates and folder creates is killed at random
moments, again and again. Nothing may be lost (every message there before is
still on disk and in the index, with every copy a move kept), the index must
open after every kill and agree with the disk, and no lock may stay behind once
the account has been opened again. ``MJ_SIGKILLS`` sets the number of kills
(the issue's check uses 150)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from maildir_jmap.mime.summary import email_id, summarize
from maildir_jmap.store.account import Account
from maildir_jmap.store.dotlock import LOCK_NAME
from maildir_jmap.store.folders import list_folders
from maildir_jmap.store.maildir import deliver, make_folder
from maildir_jmap.store.names import MAILDIRPP
from tests.store.helpers import message

KILLS = int(os.environ.get("MJ_SIGKILLS", "25"))
REPO = Path(__file__).parents[2]


def contents_on_disk(root: Path) -> set[str]:
    """The Email id of every message file under ``root`` (any folder, cur or new)."""
    ids = set()
    for folder in list_folders(root, MAILDIRPP):
        for sub in ("cur", "new"):
            directory = root / folder.directory / sub
            if directory.is_dir():
                for path in directory.iterdir():
                    ids.add(email_id(summarize(path.read_bytes()).digest))
    return ids


def test_sigkill_during_write_bursts_loses_nothing_and_leaves_no_lock(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    make_folder(root, marker=False)
    for name in ("Archive", "Trash"):
        make_folder(root / f".{name}", marker=True)
    for n in range(40):
        deliver(root, message(f"kept {n}"), flags="S" if n % 2 else "")
    state = tmp_path / "state"
    before = contents_on_disk(root)
    rng = random.Random(14)
    for kill in range(KILLS):
        writer = subprocess.Popen(
            [sys.executable, "-m", "tests.store.crash_writer", str(root), str(state), str(kill)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        assert writer.stderr is not None
        line = writer.stdout.readline()
        assert line.strip() == "ready", writer.stderr.read()
        time.sleep(rng.uniform(0.02, 0.3))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        writer.stderr.close()
    after = contents_on_disk(root)
    assert before <= after  # every message is still there, somewhere
    account = Account.open("u", root, state)
    # No lock survives the account being opened again (ours say pid:host).
    assert not list(root.rglob(LOCK_NAME))
    # The index agrees with the disk: a rescan has nothing to change, and every
    # message on disk is an Email.
    assert not account.rescan()
    assert after == set(account.index.emails)
    for rec in account.index.emails.values():
        assert rec.files
