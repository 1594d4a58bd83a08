"""Reconcile: disk -> index, one change set at a time (DESIGN, MAILDIR.md §3-§5)."""

from __future__ import annotations

import os
from pathlib import Path

from maildir_jmap.store.account import Account
from maildir_jmap.store.index import EMAIL, MAILBOX, THREAD
from maildir_jmap.store.maildir import FileName, deliver, make_folder
from tests.store.helpers import maildir, message, put


def open_account(tmp_path: Path, *folders: str) -> tuple[Path, Account]:
    root = maildir(tmp_path / "M", *folders)
    return root, Account.open("u", root, tmp_path / "state")


def box(account: Account, directory: str) -> str:
    return account.index.by_directory[directory]


def only_email(account: Account):  # type: ignore[no-untyped-def]
    (email,) = account.index.emails.values()
    return email


def changes(account: Account, type_name: str, since: int) -> tuple[set[str], set[str], set[str]]:
    created, updated, destroyed = set(), set(), set()
    for _, record_id, new, gone in account.index.change_log(type_name, since):
        if gone:
            if not new:
                destroyed.add(record_id)
        elif new:
            created.add(record_id)
        else:
            updated.add(record_id)
    return created, updated, destroyed


def test_new_message_becomes_an_email_with_content_id(tmp_path: Path) -> None:
    root, account = open_account(tmp_path)
    since = account.index.modseq
    path = put(root, message("hello"), "S")
    account.rescan()
    email = only_email(account)
    assert email.id.startswith("M")
    assert len(email.id) == 25
    assert email.keywords == {"$seen"}
    assert email.subject == "hello"
    assert email.received == 1_700_000_000
    assert email.size == FileName.parse(path.name).vsize  # the CRLF size, Dovecot's W=
    assert changes(account, EMAIL, since) == ({email.id}, set(), set())
    assert changes(account, THREAD, since)[0] == {email.thread_id}


def test_external_flag_rename_is_an_update_maildir_md_5b(tmp_path: Path) -> None:
    root, account = open_account(tmp_path)
    path = put(root, message("hello"), "S")
    account.rescan()
    email_id = only_email(account).id
    since = account.index.modseq
    os.rename(path, path.with_name(path.name.replace(":2,S", ":2,FS")))
    account.rescan()
    assert only_email(account).keywords == {"$seen", "$flagged"}
    assert changes(account, EMAIL, since) == (set(), {email_id}, set())
    assert changes(account, MAILBOX, since)[1] == {box(account, "")}  # counts may move
    assert changes(account, THREAD, since) == (set(), set(), set())


def test_keyword_letters_use_the_folders_own_file_maildir_md_1(tmp_path: Path) -> None:
    root, account = open_account(tmp_path, "Archive")
    (root / "dovecot-keywords").write_text("0 $Label1\n1 Junk\n")
    (root / ".Archive" / "dovecot-keywords").write_text("0 $Other\n")
    put(root, message("a"), "Sab")
    put(root / ".Archive", message("b"), "a")
    account.rescan()
    keywords = {e.subject: e.keywords for e in account.index.emails.values()}
    assert keywords == {"a": {"$seen", "$label1", "$junk"}, "b": {"$other"}}


def test_move_between_folders_keeps_the_email_id_maildir_md_5c(tmp_path: Path) -> None:
    root, account = open_account(tmp_path, "Archive")
    path = put(root, message("moving"), "S")
    account.rescan()
    email_id = only_email(account).id
    since = account.index.modseq
    os.rename(path, root / ".Archive" / "cur" / path.name)
    account.rescan()
    email = only_email(account)
    assert email.id == email_id
    assert email.mailbox_ids == {box(account, ".Archive")}
    assert changes(account, EMAIL, since) == (set(), {email_id}, set())


def test_copy_is_one_email_in_two_mailboxes(tmp_path: Path) -> None:
    root, account = open_account(tmp_path, "Archive")
    path = put(root, message("copied"), "S")
    os.link(path, root / ".Archive" / "cur" / path.name)
    account.rescan()
    assert only_email(account).mailbox_ids == {box(account, ""), box(account, ".Archive")}


def test_same_content_delivered_again_joins_the_email(tmp_path: Path) -> None:
    root, account = open_account(tmp_path, "Archive")
    put(root, message("twice"), "S")
    account.rescan()
    put(root / ".Archive", message("twice").replace(b"\r\n", b"\n"), "")  # LF or CRLF: same id
    account.rescan()
    email = only_email(account)
    assert len(email.files) == 2
    assert email.keywords == {"$seen"}  # the union over copies


def test_new_to_cur_by_dovecot_is_not_a_new_email_maildir_md_10(tmp_path: Path) -> None:
    root, account = open_account(tmp_path)
    from maildir_jmap.store.maildir import deliver

    path = deliver(root, message("fresh"), seen=False)
    change = account.rescan()
    assert change.delivered
    email_id = only_email(account).id
    since = account.index.modseq
    os.rename(path, root / "cur" / (path.name + ":2,"))
    account.rescan()
    assert only_email(account).id == email_id
    assert changes(account, EMAIL, since) == (set(), {email_id}, set())


def test_expunge_destroys_and_leaves_a_tombstone(tmp_path: Path) -> None:
    root, account = open_account(tmp_path)
    path = put(root, message("bye"), "S")
    account.rescan()
    email = only_email(account)
    since = account.index.modseq
    path.unlink()
    account.rescan()
    assert account.index.emails == {}
    assert changes(account, EMAIL, since) == (set(), set(), {email.id})
    assert changes(account, THREAD, since) == (set(), set(), {email.thread_id})


def test_deleted_flag_hides_the_message(tmp_path: Path) -> None:
    root, account = open_account(tmp_path)
    path = put(root, message("doomed"), "S")
    account.rescan()
    os.rename(path, path.with_name(path.name + "T"))
    account.rescan()
    assert account.index.emails == {}


def test_threads_from_references_in_either_order_rfc8621_3(tmp_path: Path) -> None:
    root, account = open_account(tmp_path, "Sent")
    put(
        root / ".Sent",
        message("reply", message_id="<r@x>", In_Reply_To="<o@x>", References="<o@x>"),
        "S",
        1_700_000_500,
    )
    account.rescan()
    put(root, message("original", message_id="<o@x>"), "S", 1_700_000_000)
    put(root, message("unrelated", message_id="<u@x>"), "S")
    account.rescan()
    threads = {e.subject: e.thread_id for e in account.index.emails.values()}
    assert threads["reply"] == threads["original"]
    assert threads["unrelated"] != threads["original"]
    thread = account.index.threads[threads["reply"]]
    emails = account.index.emails
    assert [emails[e].subject for e in thread.email_ids] == ["original", "reply"]  # by receivedAt


def test_folders_become_mailboxes_with_roles(tmp_path: Path) -> None:
    root, account = open_account(tmp_path, "Sent", "Trash", "Projects")
    make_folder(root / ".Projects.2024", marker=True)
    make_folder(root / ".Virtual.Child", marker=True)
    account.rescan()
    boxes = {m.levels: m for m in account.index.mailboxes.values()}
    assert boxes[()].role == "inbox"
    assert boxes[("Sent",)].role == "sent"
    assert boxes[("Trash",)].role == "trash"
    assert boxes[("Projects",)].role is None
    assert ("Projects", "2024") in boxes
    assert boxes[("Virtual",)].selectable is False  # a parent with no folder of its own


def test_renamed_folder_keeps_its_mailbox_id(tmp_path: Path) -> None:
    root, account = open_account(tmp_path, "Old")
    put(root / ".Old", message("inside"), "S")
    account.rescan()
    mailbox_id = box(account, ".Old")
    email_id = only_email(account).id
    since = account.index.modseq
    os.rename(root / ".Old", root / ".New")
    account.rescan()
    assert account.index.by_directory[".New"] == mailbox_id
    assert account.index.mailboxes[mailbox_id].levels == ("New",)
    assert changes(account, MAILBOX, since) == (set(), {mailbox_id}, set())
    assert only_email(account).id == email_id
    assert changes(account, EMAIL, since) == (set(), set(), set())


def test_deleted_folder_destroys_its_mailbox_and_only_emails(tmp_path: Path) -> None:
    root, account = open_account(tmp_path, "Gone")
    put(root / ".Gone", message("lonely"), "S")
    path = put(root / ".Gone", message("copied"), "S")
    os.link(path, root / "cur" / path.name)
    account.rescan()
    gone = box(account, ".Gone")
    for sub in ("cur", "new", "tmp"):
        for f in (root / ".Gone" / sub).iterdir():
            f.unlink()
        (root / ".Gone" / sub).rmdir()
    (root / ".Gone" / "maildirfolder").unlink()
    (root / ".Gone").rmdir()
    account.rescan()
    assert gone not in account.index.mailboxes
    assert [e.subject for e in account.index.emails.values()] == ["copied"]


def test_rescan_without_changes_commits_nothing(tmp_path: Path) -> None:
    root, account = open_account(tmp_path, "Archive")
    put(root, message("a"), "S")
    account.rescan()
    modseq = account.index.modseq
    assert not account.rescan()
    assert account.index.modseq == modseq


def test_partial_rescan_of_dirty_folders(tmp_path: Path) -> None:
    root, account = open_account(tmp_path, "Archive")
    account.rescan()
    put(root / ".Archive", message("a"), "S")
    put(root, message("b"), "S")
    account.rescan({".Archive"})
    assert [e.subject for e in account.index.emails.values()] == ["a"]


def test_many_new_files_are_parsed_in_a_process_pool(tmp_path: Path) -> None:
    root, account = open_account(tmp_path)
    for n in range(250):
        put(root, message(f"bulk {n}"), "S", 1_700_000_000 + n)
    seen: list[tuple[int, int]] = []
    account.rescan(progress=lambda done, total: seen.append((done, total)))
    assert len(account.index.emails) == 250
    assert seen[-1] == (250, 250)


UNREADABLE_SCAN = """
import json, os, sys
from pathlib import Path
from maildir_jmap.store.account import Account  # imported before dropping to the mail user
if os.geteuid() == 0:
    os.setgid(5000)
    os.setuid(5000)
account = Account.open("u", Path(sys.argv[1]), Path(sys.argv[2]))
first = sorted(e.subject for e in account.index.emails.values())
unreadable = sorted(account.unreadable)
print(json.dumps({"subjects": first, "unreadable": unreadable}))
"""


def test_an_unreadable_file_is_skipped_and_the_rest_indexed(tmp_path: Path) -> None:
    """Issue 14: a root-owned 0600 message made every reconcile fail, so nothing
    else was ever indexed. It is skipped (logged once, counted), the rest of the
    account is indexed, and a later scan picks it up once it can be read. Run as
    a mail user (uid 5000) against a really unreadable file."""
    import json
    import subprocess
    import sys

    from tests.dovecot import MAIL_UID, chown_tree, open_ancestors

    root = tmp_path / "M"
    make_folder(root, marker=False)
    put(root, message("readable one"), "S")
    put(root, message("readable two"), "S")
    locked = deliver(root, message("locked away"), seen=False)
    state = tmp_path / "state"
    state.mkdir()
    if os.geteuid() == 0:
        chown_tree(root)
        os.chown(state, MAIL_UID, MAIL_UID)
        os.chown(locked, 0, 0)  # root-owned, 0600: the mail user cannot read it
        open_ancestors(root)
    os.chmod(locked, 0o600 if os.geteuid() == 0 else 0o000)
    done = subprocess.run(
        [sys.executable, "-c", UNREADABLE_SCAN, str(root), str(state), str(locked)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["subjects"] == ["readable one", "readable two"]
    assert result["unreadable"] == [str(locked)]
    assert done.stderr.count("cannot read") == 1  # logged once
    # Readable again: the next scan indexes it.
    os.chmod(locked, 0o644)
    account = Account.open("u", root, tmp_path / "state-2")
    assert sorted(e.subject for e in account.index.emails.values()) == [
        "locked away",
        "readable one",
        "readable two",
    ]
    assert account.unreadable == {}


def test_a_file_renamed_again_after_its_events_were_read_is_not_taken_for_gone(
    tmp_path: Path,
) -> None:
    """CI caught an Email vanishing from the index for a moment: Dovecot moved a
    message new/ -> cur/ and at once renamed it for a flag; the watcher's batch
    named only the first two names, none of which existed any more, and the Email
    was destroyed (to come back as created with the next batch). What the names
    miss gets a second look in the folder before anything is taken for gone."""
    root = maildir(tmp_path / "M")
    path = deliver(root, message("two"), flags="", seen=False)  # new/
    account = Account.open("u", root, tmp_path / "s")
    (eid,) = account.index.emails
    base = FileName.parse(path.name).base
    os.rename(path, root / "cur" / f"{base}:2,")  # Dovecot's SELECT
    os.rename(root / "cur" / f"{base}:2,", root / "cur" / f"{base}:2,F")  # and a STORE
    stale = {"": {("new", base), ("cur", f"{base}:2,")}}  # the events read so far
    change = account.rescan(set(), names=stale)
    assert eid in account.index.emails
    assert eid not in change.emails_gone
    assert account.index.emails[eid].keywords == {"$flagged"}
    # A real expunge is still one.
    (root / "cur" / f"{base}:2,F").unlink()
    account.rescan(set(), names={"": {("cur", f"{base}:2,F")}})
    assert eid not in account.index.emails


NO_INTERPRETER = """
import logging, os, sys
from pathlib import Path
# What a service user can read but not run: the library is loaded, the
# interpreter (under /root here, as with a pyenv or a venv in a home) is not
# executable by the mail user, so the forkserver cannot start.
import multiprocessing.connection, multiprocessing.forkserver, multiprocessing.popen_forkserver
import multiprocessing.queues, multiprocessing.synchronize
from maildir_jmap.store.account import Account
logging.basicConfig(level=logging.WARNING)
os.setgid(5000)
os.setuid(5000)
if os.access(sys.executable, os.X_OK):
    print("SKIP: the interpreter is executable by uid 5000")
    raise SystemExit(0)
account = Account.open("u", Path(sys.argv[1]), Path(sys.argv[2]))
print(len(account.index.emails))
"""


def test_worker_processes_that_cannot_start_mean_indexing_in_one_process(tmp_path: Path) -> None:
    """Issue 17: the index worker pool failed with a BrokenPipeError at start-up
    when the service user could not execute the interpreter. Real: root drops to
    a mail user for whom the interpreter is not executable; enough messages that
    the pool is used. The account is indexed, with one warning."""
    import subprocess
    import sys

    import pytest

    from tests.dovecot import MAIL_UID, chown_tree, open_ancestors

    if os.geteuid() != 0:
        pytest.skip("needs root to become the mail user")
    root = tmp_path / "M"
    make_folder(root, marker=False)
    for n in range(210):  # above POOL_THRESHOLD
        put(root, message(f"bulk {n}"), "S", 1_700_000_000 + n)
    state = tmp_path / "state"
    state.mkdir()
    chown_tree(root)
    os.chown(state, MAIL_UID, MAIL_UID)
    open_ancestors(root)
    done = subprocess.run(
        [sys.executable, "-c", NO_INTERPRETER, str(root), str(state)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parents[2],
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    if done.stdout.startswith("SKIP"):
        pytest.skip(done.stdout.strip())
    assert done.stdout.strip().splitlines()[-1] == "210"
    assert "index worker processes cannot start" in done.stderr
    assert "Traceback" not in done.stderr
