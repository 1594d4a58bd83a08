"""A fault injector on the reconcile and write paths (issue 14): the filesystem
does what another writer or a full disk would do at the worst moment, and the
index must stay right and no half-written file may stay behind."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from maildir_jmap import durable
from maildir_jmap.store import reconcile
from maildir_jmap.store.account import Account
from maildir_jmap.store.maildir import FileName, deliver, make_folder
from tests.store.helpers import message
from tests.store.test_dovecot_email import box, call


def first_call(original: Callable[..., Any], fault: Callable[..., None]) -> Callable[..., Any]:
    """``original``, with ``fault(*args)`` done right before its first call."""
    pending = [fault]

    def run(*args: Any, **kwargs: Any) -> Any:
        while pending:
            pending.pop()(*args, **kwargs)
        return original(*args, **kwargs)

    return run


@pytest.fixture
def account(tmp_path: Path) -> Account:
    root = tmp_path / "Maildir"
    make_folder(root, marker=False)
    deliver(root, message("one"), flags="S")
    return Account.open("u", root, tmp_path / "state")


def every_file(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_a_file_that_vanishes_between_listing_and_reading(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = deliver(account.maildir, message("gone at once"), seen=False)
    monkeypatch.setattr(
        reconcile,
        "summarize_file",
        first_call(reconcile.summarize_file, lambda p, *_: os.unlink(p)),
    )
    change = account.rescan()
    assert not change.emails  # nothing half-known was indexed
    assert not path.exists()
    assert sorted(e.subject for e in account.index.emails.values()) == ["one"]
    assert not account.rescan()


def test_a_file_renamed_between_listing_and_reading_is_found_next_time(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = deliver(account.maildir, message("renamed meanwhile"), flags="")
    flagged = path.with_name(FileName.parse(path.name).with_marks("FS", "").name())

    monkeypatch.setattr(
        reconcile,
        "summarize_file",
        first_call(reconcile.summarize_file, lambda p, *_: os.rename(path, flagged)),
    )
    account.rescan()  # the file it listed is gone by the time it reads it
    monkeypatch.undo()
    account.rescan()  # the next scan (the watcher's event, or the periodic one) finds it
    (rec,) = [e for e in account.index.emails.values() if e.subject == "renamed meanwhile"]
    assert rec.keywords == {"$seen", "$flagged"}
    assert not account.rescan()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_refuses_the_import_and_leaves_nothing(
    account: Account, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    before = every_file(account.maildir)
    state = account.state("Email")
    blob = account.blobs.put_bytes(message("too big for the disk")).blob_id
    real = durable.write_all

    def half_then_full(fd: int, data: bytes) -> None:
        real(fd, data[: len(data) // 2])
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(durable, "write_all", half_then_full)
    inbox = box(account, "INBOX")
    result = call(
        account, "Email/import", emails={"i": {"blobId": blob, "mailboxIds": {inbox: True}}}
    )
    assert result["notCreated"]["i"]["type"] == "overQuota"
    assert every_file(account.maildir) == before  # no half file in tmp/, cur/ or new/
    assert account.state("Email") == state
    monkeypatch.undo()
    again = call(
        account, "Email/import", emails={"i": {"blobId": blob, "mailboxIds": {inbox: True}}}
    )
    assert again["created"]["i"]["id"]
    assert not account.rescan()
