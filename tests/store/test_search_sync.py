"""The full-text index stays right while keyword changes skip its re-check."""

from __future__ import annotations

import os
from pathlib import Path

from maildir_jmap.store.account import Account
from maildir_jmap.store.maildir import deliver


def flip_flag(maildir: Path) -> None:
    path = next((maildir / "cur").iterdir())
    base, _, flags = path.name.partition(":2,")
    os.rename(path, path.with_name(base + ":2," + "".join(sorted(set(flags) ^ {"F"}))))


def test_keyword_changes_skip_the_recheck_but_new_and_gone_mail_does_not(
    tmp_path: Path, maildir: Path
) -> None:
    account = Account.open("alice", maildir, tmp_path / "state")
    try:
        account.sync_search()
        flip_flag(maildir)
        account.rescan()
        assert account.sync_search() == 0
        assert account.search.synced() == (account.index.epoch, account.index.modseq)
        path = deliver(maildir, b"Subject: zeppelin\n\nairship notes\n", flags="S")
        flip_flag(maildir)
        account.rescan()
        # Issue 18: indexed by the rescan itself, from the parse it did anyway;
        # the sync then has nothing left to read.
        assert len(account.search.search("airship")) == 1
        assert account.sync_search() == 0
        flip_flag(maildir)
        account.rescan()
        base = path.name.partition(":2,")[0]  # a flip may have renamed it
        next((maildir / "cur").glob(base + ":2,*")).unlink()
        account.rescan()
        account.sync_search()
        assert account.search.search("airship") == set()
    finally:
        account.close()


def test_after_a_restart_the_first_sync_checks(tmp_path: Path, maildir: Path) -> None:
    account = Account.open("alice", maildir, tmp_path / "state")
    account.sync_search()
    account.close()
    # Mail arrives while the server is down; the next process must notice it.
    deliver(maildir, b"Subject: while away\n\nballoon\n", flags="S")
    again = Account.open("alice", maildir, tmp_path / "state")
    try:
        assert len(again.search.search("balloon")) == 1  # indexed as it was found
        assert again.sync_search() == 0
    finally:
        again.close()
