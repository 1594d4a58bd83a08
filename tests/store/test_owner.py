"""One owner per account state (issue 20): a second open is refused at once, by
another process or this one, and a holder's death (SIGKILL included) frees it."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from maildir_jmap.store.account import Account
from maildir_jmap.store.owner import AccountOwned
from tests.store.helpers import maildir, message, put

REPO = Path(__file__).parents[2]
HOLDER = """
import sys, time
from pathlib import Path
from maildir_jmap.store.account import Account
Account.open("ann", Path(sys.argv[1]), Path(sys.argv[2]))
print("open", flush=True)
time.sleep(120)
"""


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "owner.lock"
    }


def test_a_second_open_in_this_process_is_refused_until_close(tmp_path: Path) -> None:
    root = maildir(tmp_path / "Maildir", "Archive")
    put(root, message("one"))
    first = Account.open("ann", root, tmp_path / "state")
    with pytest.raises(AccountOwned) as refused:
        Account.open("ann", root, tmp_path / "state")
    assert f"pid {os.getpid()}" in refused.value.holder
    first.close()
    again = Account.open("ann", root, tmp_path / "state")
    assert len(again.index.emails) == 1
    again.close()


def test_another_process_owning_the_account_refuses_us_and_its_kill_frees_it(
    tmp_path: Path,
) -> None:
    root = maildir(tmp_path / "Maildir", "Archive")
    put(root, message("one"))
    state = tmp_path / "state"
    Account.open("ann", root, state).close()  # built once, so the holder only loads
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root), str(state)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "open\n"
        put(root, message("two"))  # a change the refused open must not index
        before = tree_digest(state)
        with pytest.raises(AccountOwned) as refused:
            Account.open("ann", root, state)
        assert f"pid {holder.pid} on " in str(refused.value)
        assert tree_digest(state) == before  # refused before reading or writing anything
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    account = Account.open("ann", root, state)  # at once: the kernel dropped the lock
    assert len(account.index.emails) == 2
    account.close()


def test_an_open_that_fails_gives_the_account_up(tmp_path: Path) -> None:
    root = maildir(tmp_path / "Maildir")
    state = tmp_path / "state"
    (state / "accounts").mkdir(parents=True)
    with pytest.raises(FileNotFoundError):
        Account.open("ann", tmp_path / "missing", state)
    account = Account.open("ann", root, state)
    account.close()
