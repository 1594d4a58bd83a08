"""With a real Dovecot on the same Maildir, in both layouts: what JMAP writes IMAP
sees, and what IMAP does the index picks up on the next reconcile."""

from __future__ import annotations

import imaplib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from maildir_jmap.core.dispatch import Context
from maildir_jmap.mail.mailbox_set import MailboxSetRecords
from maildir_jmap.store.account import Account
from maildir_jmap.store.dotlock import folder_lock
from maildir_jmap.store.folders import read_subscriptions
from maildir_jmap.store.keywords import imap_names_needed, marks_for
from maildir_jmap.store.keywords_file import add_keywords, read_keywords
from maildir_jmap.store.maildir import FileName, make_folder, rename_marks
from maildir_jmap.store.names import FS, MAILDIRPP, Layout
from tests.dovecot import Dovecot, available

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))
LAYOUTS = {"maildir++": MAILDIRPP, "fs": FS}


@pytest.fixture(params=list(LAYOUTS))
def setup(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Dovecot, Account, Layout]]:
    layout = LAYOUTS[request.param]
    root = tmp_path / "Maildir"
    make_folder(root, marker=False)
    dovecot = Dovecot(root, tmp_path / "dovecot", request.param).start()
    try:
        account = Account.open("alice", root, tmp_path / "state", layout=layout)
        yield dovecot, account, layout
    finally:
        dovecot.stop()


def sep(layout: Layout) -> str:
    return "." if layout is MAILDIRPP else "/"


def imap_names(client: imaplib.IMAP4, command: str = "LIST") -> set[str]:
    typ, data = client.list() if command == "LIST" else client.lsub()
    assert typ == "OK"
    names = set()
    for line in data:
        assert isinstance(line, bytes)
        match = re.match(rb'\((?P<flags>[^)]*)\) "(?P<sep>[^"]*)" (?P<name>.*)$', line)
        assert match, line
        name = match.group("name").decode()
        names.add(name.strip('"'))
    return names


def mailbox_paths(account: Account) -> dict[str, str]:
    """level path ("Sub/Folder") -> mailbox id, read from the index."""
    return {"/".join(m.levels) or "INBOX": m.id for m in account.index.mailboxes.values()}


def fetch_flags(client: imaplib.IMAP4, mailbox: str) -> list[str]:
    client.select(f'"{mailbox}"')
    typ, data = client.fetch("1:*", "(FLAGS)")
    assert typ == "OK"
    return [d.decode() for d in data if isinstance(d, bytes)]


def test_mailboxes_created_by_jmap_are_listed_and_subscribed_in_imap(
    setup: tuple[Dovecot, Account, Layout],
) -> None:
    dovecot, account, layout = setup
    records = MailboxSetRecords(account, read_only=False)
    ctx = Context(username="alice", accounts={}, limits=None)  # type: ignore[arg-type]
    projects = records.create(ctx, "p", {"name": "Projects"})["id"]
    records.create(ctx, "c", {"name": "Grüße", "parentId": projects})
    inbox = account.index.inbox()
    assert inbox is not None
    records.create(ctx, "i", {"name": "Receipts", "parentId": inbox.id})
    s = sep(layout)
    client = dovecot.imap()
    try:
        listed = imap_names(client)
        assert {"INBOX", "Projects", f"Projects{s}Gr&APwA3w-e", f"INBOX{s}Receipts"} <= listed
        subscribed = imap_names(client, "LSUB")
        assert {"Projects", f"Projects{s}Gr&APwA3w-e", f"INBOX{s}Receipts"} <= subscribed
        assert client.select(f'"Projects{s}Gr&APwA3w-e"')[0] == "OK"
        # ... and renames too, with the subscription following.
        records.update(ctx, projects, {"name": "Work"})
        client.logout()
        client = dovecot.imap()  # MAILDIR.md §5(f): a session started before may list stale names
        listed = imap_names(client)
        assert f"Work{s}Gr&APwA3w-e" in listed
        assert "Projects" not in listed
        assert f"Work{s}Gr&APwA3w-e" in imap_names(client, "LSUB")
    finally:
        client.logout()


def test_folders_created_renamed_deleted_in_imap_reach_the_index(
    setup: tuple[Dovecot, Account, Layout],
) -> None:
    dovecot, account, layout = setup
    s = sep(layout)
    client = dovecot.imap()
    try:
        for name in ("Archive", f"Archive{s}2024", f"INBOX{s}Child", "Entw&APw-rfe", "Doomed"):
            assert client.create(name)[0] == "OK"
        client.subscribe("Archive")
        client.append("Archive", r"(\Seen)", None, b"Subject: keep\r\n\r\nbody\r\n")
        account.rescan()
        before = mailbox_paths(account)
        assert {"INBOX", "Archive", "Archive/2024", "INBOX/Child", "Entwürfe", "Doomed"} <= set(
            before
        )
        assert ("Archive",) in read_subscriptions(account.maildir)
        archive_box = account.index.mailboxes[before["Archive"]]
        assert archive_box.subscribed
        assert client.rename("Archive", "Old")[0] == "OK"
        assert client.delete("Doomed")[0] == "OK"
        account.rescan()
        after = mailbox_paths(account)
        assert after["Old"] == before["Archive"]  # a renamed folder keeps its Mailbox id
        assert after["Old/2024"] == before["Archive/2024"]  # an empty child moved with it
        assert "Doomed" not in after
        assert "Archive" not in after
    finally:
        client.logout()


def test_messages_and_flags_from_imap_reach_the_index(
    setup: tuple[Dovecot, Account, Layout],
) -> None:
    dovecot, account, _layout = setup
    client = dovecot.imap()
    try:
        client.create("Archive")
        client.append(
            "INBOX", r"(\Seen \Answered $Label1 $Forwarded Junk)", None, b"Subject: a\r\n\r\nx\r\n"
        )
        client.append("INBOX", None, None, b"Subject: b\r\n\r\ny\r\n")
        account.rescan()
        by_subject = {e.subject: e for e in account.index.emails.values()}
        assert by_subject["a"].keywords == {"$seen", "$answered", "$label1", "$forwarded", "$junk"}
        assert by_subject["b"].keywords == set()
        ids = {e.subject: e.id for e in account.index.emails.values()}
        client.select("INBOX")
        client.store("2", "+FLAGS", r"(\Flagged)")
        client.copy("1", "Archive")
        client.expunge()
        account.rescan()
        by_subject = {e.subject: e for e in account.index.emails.values()}
        assert by_subject["b"].keywords == {"$flagged"}
        archive = mailbox_paths(account)["Archive"]
        assert by_subject["a"].mailbox_ids == {account.index.inbox().id, archive}  # type: ignore[union-attr]
        # Archive has its own letters; the copy's keywords still read right.
        assert by_subject["a"].keywords == {"$seen", "$answered", "$label1", "$forwarded", "$junk"}
        client.store("1", "+FLAGS", r"(\Deleted)")
        client.expunge()
        account.rescan()
        assert {e.subject: e.id for e in account.index.emails.values()} == ids  # ids never change
        assert account.index.emails[ids["a"]].mailbox_ids == {archive}
    finally:
        client.logout()


def test_keywords_written_by_us_are_what_imap_fetches_maildir_md_6_5(
    setup: tuple[Dovecot, Account, Layout],
) -> None:
    dovecot, account, _ = setup
    client = dovecot.imap()
    try:
        client.append("INBOX", r"(\Seen $Existing)", None, b"Subject: k\r\n\r\nz\r\n")
        account.rescan()
        (email,) = account.index.emails.values()
        root = account.maildir
        wanted = {"$seen", "$flagged", "$existing", "$work", "$forwarded"}
        with folder_lock(root):
            names = add_keywords(root, imap_names_needed(wanted, read_keywords(root)))
        _, _subdir, base, info = email.files[0]
        parsed = FileName.parse(base + info)
        flags, letters = marks_for(wanted, parsed.flags, parsed.letters, names)
        rename_marks(root, parsed.base, flags, letters)
        (line,) = fetch_flags(client, "INBOX")
        for flag in (r"\Seen", r"\Flagged", "$Existing", "$work", "$Forwarded"):
            assert flag in line, line
        assert "unknown" not in line
        account.rescan()
        (email,) = account.index.emails.values()
        assert email.keywords == wanted
    finally:
        client.logout()


def dovecot_files(root: Path) -> dict[str, bytes]:
    """Dovecot's own files (MAILDIR.md §6 rule 7: never written by us)."""
    found = {}
    for path in root.rglob("dovecot*"):
        if path.is_file() and "keywords" not in path.name:
            found[str(path.relative_to(root))] = path.read_bytes()
    return found


def test_moves_remap_keyword_letters_and_leave_dovecot_files_alone_maildir_md_6(
    setup: tuple[Dovecot, Account, Layout],
) -> None:
    from maildir_jmap.store import messages

    dovecot, account, layout = setup
    client = dovecot.imap()
    try:
        client.create("Archive")
        client.append(
            "Archive", r"(\Seen $Other)", None, b"Subject: other\r\n\r\nx\r\n"
        )  # a = $Other there
        client.append(
            "INBOX", r"(\Seen $Label1)", None, b"Subject: mover\r\n\r\ny\r\n"
        )  # a = $Label1 here
        client.select("INBOX")
        client.select("Archive")  # let Dovecot write its uidlists and indexes first
        root = account.maildir
        archive = root / layout.directory(("Archive",))
        before = dovecot_files(root)
        (source,) = (root / "cur").iterdir()
        moved = messages.move(source, archive)
        assert FileName.parse(moved.name).letters == "b"  # re-mapped: b = $Label1 in Archive
        copied = messages.copy(moved, root, {"$seen", "$flagged", "$label1"})
        messages.set_keywords(copied, {"$answered"})
        client.logout()
        client = dovecot.imap()
        flags = fetch_flags(client, "Archive")
        assert any("$Label1" in f and "$Other" not in f for f in flags), flags
        (inbox_flags,) = fetch_flags(client, "INBOX")
        assert r"\Answered" in inbox_flags
        assert r"\Seen" not in inbox_flags
        client.logout()
        client = dovecot.imap()
        assert dovecot_files(root).keys() >= before.keys()
        for name, content in before.items():
            if "uidlist" in name and not name.endswith(".lock"):
                # Dovecot itself appends to its uidlist when it sees our new files;
                # what it had written before must still be there, untouched by us.
                assert dovecot_files(root)[name].startswith(content.split(b"\n")[0])
    finally:
        client.logout()


def test_a_lock_left_by_a_killed_writer_holds_up_neither_side(
    setup: tuple[Dovecot, Account, Layout],
) -> None:
    """Issue 14: SIGKILL cannot be cleaned up after, so a lock of ours may be left
    behind. It says ``pid:hostname`` as Dovecot's do, so Dovecot breaks it as soon
    as it sees the process is gone, and so do we, instead of both waiting out the
    two-minute stale timeout (IMAP stalled, JMAP answered serverFail)."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    dovecot, account, _ = setup
    root = account.maildir
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from maildir_jmap.store.maildir import folder_lock\n"
            "with folder_lock(Path(sys.argv[1])):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(600)\n",
            str(root),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    lock = root / "dovecot-uidlist.lock"
    assert lock.exists()  # what a kill -9 leaves
    client = dovecot.imap()
    try:
        start = time.monotonic()
        typ, _ = client.append("INBOX", r"(\Seen)", None, b"Subject: after\r\n\r\nx\r\n")
        assert typ == "OK"
        assert time.monotonic() - start < 10  # Dovecot broke it (its own grace is 2 s)
    finally:
        client.logout()
    # And ours, when it is our turn to find such a lock.
    lock.write_text(f"{holder.pid}:{socket.gethostname()}")
    old = time.time() - 3
    os.utime(lock, (old, old))
    start = time.monotonic()
    with folder_lock(root, wait=5):
        pass
    assert time.monotonic() - start < 1
    assert not lock.exists()
