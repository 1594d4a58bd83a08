"""store/email_files: Email-level file operations, and what a crash in the middle
of one leaves behind (no data loss: never fewer copies than before)."""

from __future__ import annotations

from pathlib import Path

import pytest

from maildir_jmap.store import email_files, keywords_file, messages
from maildir_jmap.store.account import Account
from maildir_jmap.store.email_files import KeywordEdit
from maildir_jmap.store.keywords_file import TooManyKeywords
from maildir_jmap.store.maildir import FileName
from maildir_jmap.store.records import Change
from tests.store.helpers import maildir as make_maildir
from tests.store.helpers import message, put


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing catches it."""


@pytest.fixture
def account(tmp_path: Path) -> Account:
    root = make_maildir(tmp_path / "Maildir", "Archive", "Trash")
    put(root, message("one"), flags="S")
    put(root, message("two"), flags="")
    return Account.open("alice", root, tmp_path / "state")


def ids(account: Account) -> dict[str, str]:
    return {r.subject: r.id for r in account.index.emails.values()}


def box(account: Account, name: str) -> str:
    return next(m.id for m in account.index.mailboxes.values() if m.levels[-1:] == (name,))


def inodes_on_disk(root: Path) -> set[int]:
    """The messages on disk, whatever their names: a move renames to a new base."""
    return {p.stat().st_ino for p in root.rglob("*") if p.parent.name in ("cur", "new")}


def test_keyword_edit_applies_to_what_is_there() -> None:
    edit = KeywordEdit(add=frozenset({"$flagged"}), remove=frozenset({"$seen"}))
    assert edit.apply({"$seen", "$answered"}) == {"$flagged", "$answered"}
    assert KeywordEdit(replace=frozenset({"a"})).apply({"b"}) == {"a"}


@pytest.mark.parametrize("step", ["copy_file", "move_file", "remove_file"])
def test_a_crash_at_any_step_of_a_move_leaves_the_message(
    account: Account, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """Moving "one" from INBOX to Archive+Trash copies, then renames, then (for a
    third folder it leaves) removes; dying at any step keeps at least one copy, and
    the next start reconciles to the same Email id."""
    root = account.maildir
    eid = ids(account)["one"]
    before = inodes_on_disk(root)
    target = {box(account, "Archive"), box(account, "Trash")}
    if step == "remove_file":
        # Give it a third copy to leave behind, so a removal happens.
        email_files.place(
            root,
            account.index,
            account.index.emails[eid],
            {*account.index.emails[eid].mailbox_ids, box(account, "Trash")},
            KeywordEdit(),
        )
        account.rescan()
        target = {box(account, "Archive")}

    def crash(*args: object, **kwargs: object) -> None:
        raise Crash

    module = messages if step in ("copy_file", "move_file") else email_files
    monkeypatch.setattr(module, step, crash)
    with pytest.raises(Crash):
        email_files.place(root, account.index, account.index.emails[eid], target, KeywordEdit())
    monkeypatch.undo()
    assert before <= inodes_on_disk(root)  # every message still has a file
    account.close()
    again = Account.open("alice", root, account.state_dir.parent.parent)
    assert eid in again.index.emails
    assert again.index.emails[eid].files


def test_no_letter_left_moves_nothing(account: Account) -> None:
    root = account.maildir
    eid = ids(account)["one"]
    rec = account.index.emails[eid]
    many = KeywordEdit(replace=frozenset(f"k{i}" for i in range(26)))
    new = email_files.place(root, account.index, rec, rec.mailbox_ids, many)
    account.commit(Change(emails={eid: new}))
    before = sorted(p.name for p in (root / "cur").iterdir())
    with pytest.raises(TooManyKeywords):
        email_files.place(
            root,
            account.index,
            account.index.emails[eid],
            {box(account, "Archive")},
            KeywordEdit(add=frozenset({"k26"})),
        )
    assert sorted(p.name for p in (root / "cur").iterdir()) == before
    assert not any((root / ".Archive" / "cur").iterdir())


def test_add_writes_flags_letters_and_mtime(account: Account) -> None:
    root = account.maildir
    added = email_files.add(
        root,
        account.index,
        message("three"),
        [box(account, "Archive"), box(account, "Trash")],
        frozenset({"$seen", "label"}),
        received=1_600_000_000,
    )
    first, second = added.record.files
    path = root / ".Archive" / first[1] / (first[2] + first[3])
    assert int(path.stat().st_mtime) == 1_600_000_000
    assert FileName.parse(path.name).flags == "S"
    assert FileName.parse(path.name).letters == "a"
    assert keywords_file.read_keywords(root / ".Archive") == {"a": "label"}
    assert second[2] != first[2]  # each folder's copy has a base of its own
    assert FileName.parse(second[2]).size == FileName.parse(first[2]).size
