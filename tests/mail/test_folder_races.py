"""Folders that disappear under a request (issue 14): an IMAP client renames or
deletes a folder between our last reconcile and a JMAP write into it. A fault
injector does the rename on disk at the worst moment (right before the write
touches the folder); every such request gets the SetError the RFC names, never
serverFail, and the index agrees with the disk afterwards."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from maildir_jmap.store import email_files, messages
from maildir_jmap.store.account import Account
from maildir_jmap.store.maildir import deliver, make_folder
from maildir_jmap.store.names import FS, MAILDIRPP, Layout
from tests.store.test_dovecot_email import box, call

LAYOUTS = {"maildir++": MAILDIRPP, "fs": FS}
MESSAGE = b"From: a@example.com\r\nSubject: racing\r\nMessage-ID: <race@x>\r\n\r\nbody\r\n"


@pytest.fixture(params=list(LAYOUTS))
def account(request: pytest.FixtureRequest, tmp_path: Path) -> Account:
    layout: Layout = LAYOUTS[request.param]
    root = tmp_path / "Maildir"
    make_folder(root, marker=False)
    for name in ("Box", "Other"):
        make_folder(root / layout.directory((name,)), marker=layout.marker)
    deliver(root, b"Subject: already here\r\n\r\nx\r\n", flags="S")
    # A folder with mail in it is recognised after a rename (same base names).
    deliver(root / layout.directory(("Box",)), b"Subject: in box\r\n\r\nx\r\n", flags="S")
    return Account.open("alice", root, tmp_path / "state", layout=layout)


def imap_rename(account: Account, name: str, to: str) -> None:
    """What Dovecot does for RENAME: one directory rename (MAILDIR.md §4)."""
    layout = account.layout
    root = account.maildir
    os.rename(root / layout.directory((name,)), root / layout.directory((to,)))


def imap_delete(account: Account, name: str) -> None:
    """What Dovecot does for DELETE: the folder's directory goes, mail and all."""
    shutil.rmtree(account.maildir / account.layout.directory((name,)))


def injected(original: Callable[..., Any], fault: Callable[[], None]) -> Callable[..., Any]:
    """``original``, with ``fault`` done once right before its first call."""
    pending = [fault]

    def run(*args: Any, **kwargs: Any) -> Any:
        while pending:
            pending.pop()()
        return original(*args, **kwargs)

    return run


def consistent(account: Account) -> None:
    """A rescan finds nothing the index does not already know."""
    assert not account.rescan()


def test_import_into_a_folder_renamed_meanwhile(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = box(account, "Box")
    blob = account.blobs.put_bytes(MESSAGE).blob_id
    fault = injected(email_files.deliver, lambda: imap_rename(account, "Box", "Renamed"))
    monkeypatch.setattr(email_files, "deliver", fault)
    result = call(
        account, "Email/import", emails={"i": {"blobId": blob, "mailboxIds": {target: True}}}
    )
    assert result["notCreated"]["i"]["type"] == "invalidProperties"
    assert result["notCreated"]["i"]["properties"] == ["mailboxIds"]
    # The index followed the rename (same Mailbox id), and nothing was written.
    assert account.index.mailboxes[target].levels == ("Renamed",)
    assert all(e.subject != "racing" for e in account.index.emails.values())
    consistent(account)


def test_create_in_two_folders_one_deleted_leaves_no_copy(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    other, target = box(account, "Other"), box(account, "Box")
    fault = injected(messages.copy, lambda: imap_delete(account, "Box"))
    monkeypatch.setattr(messages, "copy", fault)
    result = call(
        account,
        "Email/set",
        create={"c": {"mailboxIds": {other: True, target: True}, "subject": "two places"}},
    )
    assert result["notCreated"]["c"]["properties"] == ["mailboxIds"]
    other_dir = account.maildir / account.layout.directory(("Other",))
    # The first copy went again.
    assert not [p for p in (other_dir / "cur").iterdir() if b"two places" in p.read_bytes()]
    assert target not in account.index.mailboxes
    consistent(account)


def test_move_into_a_folder_renamed_meanwhile(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    (email_id,) = [e.id for e in account.index.emails.values() if e.subject == "already here"]
    target = box(account, "Box")
    fault = injected(messages.move, lambda: imap_rename(account, "Box", "Elsewhere"))
    monkeypatch.setattr(messages, "move", fault)
    result = call(account, "Email/set", update={email_id: {"mailboxIds": {target: True}}})
    assert result["notUpdated"][email_id]["properties"] == ["mailboxIds"]
    assert account.index.emails[email_id].mailbox_ids == {box(account, "INBOX")}
    consistent(account)


def test_rename_of_a_folder_imap_renamed_first(account: Account) -> None:
    target = box(account, "Box")
    imap_rename(account, "Box", "Theirs")  # no reconcile since
    result = call(account, "Mailbox/set", update={target: {"name": "Mine"}})
    assert result["notUpdated"][target]["type"] == "notFound"
    assert account.index.mailboxes[target].levels == ("Theirs",)
    consistent(account)


def test_child_of_a_parent_imap_deleted_is_refused_not_recreated(account: Account) -> None:
    parent = box(account, "Box")
    folder = account.maildir / account.layout.directory(("Box",))
    imap_delete(account, "Box")
    result = call(account, "Mailbox/set", create={"k": {"name": "Child", "parentId": parent}})
    assert result["notCreated"]["k"]["properties"] == ["parentId"]
    assert not folder.exists()
    assert parent not in account.index.mailboxes
    consistent(account)


def test_a_folder_with_a_save_under_way_is_not_deleted(account: Account) -> None:
    """Dovecot writes an APPEND into tmp/ without the folder's lock; deleting the
    folder then made the save fail ("unlink(.../tmp/...) failed" in Dovecot's log,
    found by the soak). A recent tmp/ file keeps the folder; old debris does not."""
    target = box(account, "Other")
    folder = account.maildir / account.layout.directory(("Other",))
    saving = folder / "tmp" / "1796180404.M225422P22164.vm"
    saving.write_bytes(b"Subject: half written\n")
    result = call(account, "Mailbox/set", destroy=[target])
    assert result["notDestroyed"][target]["type"] == "mailboxHasEmail"
    assert (folder / "cur").is_dir()
    old = time.time() - 3600
    os.utime(saving, (old, old))  # a crash's leftover, long past
    result = call(account, "Mailbox/set", destroy=[target])
    assert result["destroyed"] == [target]
    assert not folder.exists()


def test_catching_up_finds_the_target_folder_gone(account: Account) -> None:
    """The soak's case: the Email's file was moved by IMAP (so the write catches
    up with the disk) and the folder the patch adds was deleted by IMAP; the
    answer is invalidProperties on mailboxIds, not a KeyError as serverFail."""
    (email_id,) = [e.id for e in account.index.emails.values() if e.subject == "already here"]
    target = box(account, "Box")
    (ref,) = account.index.emails[email_id].files
    inbox_file = account.maildir / ref[1] / (ref[2] + ref[3])
    other = account.maildir / account.layout.directory(("Other",))
    os.rename(inbox_file, other / "cur" / inbox_file.name)  # IMAP MOVE
    imap_delete(account, "Box")  # IMAP DELETE
    result = call(account, "Email/set", update={email_id: {f"mailboxIds/{target}": True}})
    assert result["notUpdated"][email_id]["properties"] == ["mailboxIds"]
    assert account.index.emails[email_id].mailbox_ids == {box(account, "Other")}
    consistent(account)
