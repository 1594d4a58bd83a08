"""The watcher: Dovecot's changes become JMAP changes and pushes, with nothing missed
(a real Dovecot and imaplib on the same Maildir, and a real uvicorn for push)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from maildir_jmap.config import Config
from maildir_jmap.core.capabilities import CORE, MAIL
from maildir_jmap.core.dispatch import Context
from maildir_jmap.http.app import create_app
from maildir_jmap.mail.email_set import EmailSetRecords
from maildir_jmap.server.registry import build_registry
from maildir_jmap.store.account import Account
from maildir_jmap.store.index import EMAIL, MAILBOX
from maildir_jmap.store.maildir import deliver, make_folder
from maildir_jmap.store.names import FS, MAILDIRPP, Layout
from maildir_jmap.sync.watcher import TREE, Watcher
from maildir_jmap.users import User, UserDirectory
from tests.conftest import PASSWORDS, LiveServer
from tests.dovecot import Dovecot, available
from tests.http.test_push import read_events

needs_dovecot = pytest.mark.skipif(available() is not None, reason=str(available()))


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> float:
    """Seconds until ``condition`` held; fails after ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)
    return time.monotonic() - start


@pytest.mark.parametrize(
    ("layout", "relative", "directory", "expected"),
    [
        (MAILDIRPP, "cur/x:2,S", False, ""),
        (MAILDIRPP, "new/x", False, ""),
        (MAILDIRPP, ".A.B/cur/x:2,", False, ".A.B"),
        (MAILDIRPP, ".A/dovecot-keywords", False, ".A"),
        (MAILDIRPP, "dovecot-keywords", False, ""),
        (MAILDIRPP, ".A", True, TREE),
        (MAILDIRPP, "subscriptions", False, TREE),
        (MAILDIRPP, "tmp/x", False, None),
        (MAILDIRPP, ".A/tmp/x", False, None),
        (MAILDIRPP, "tmp/.mj-123", True, None),
        (MAILDIRPP, "dovecot.index.log", False, None),
        (MAILDIRPP, ".A/dovecot-uidlist", False, None),
        (MAILDIRPP, ".A/dovecot-uidlist.lock", False, None),
        (FS, "A/B/cur/x", False, "A/B"),
        (FS, "A/B/dovecot-keywords", False, "A/B"),
        (FS, "A/B", True, TREE),
        (FS, "A/B/new", True, "A/B"),
    ],
)
def test_events_map_to_folders(
    tmp_path: Path, layout: Layout, relative: str, directory: bool, expected: str | None
) -> None:
    root = tmp_path / "M"
    make_folder(root, marker=False)
    account = Account.open("u", root, tmp_path / "s", layout=layout)
    assert Watcher(account).folder_of(root / relative, directory) == expected


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Account, Watcher]]:
    root = tmp_path / "M"
    make_folder(root, marker=False)
    make_folder(root / ".Archive", marker=True)
    account = Account.open("u", root, tmp_path / "s")
    watcher = Watcher(account).start()
    try:
        yield account, watcher
    finally:
        watcher.stop()


def test_a_delivery_is_seen_at_once(watched: tuple[Account, Watcher]) -> None:
    account, _ = watched
    changed: list[dict[str, str]] = []
    account.listeners.append(lambda acct, states: changed.append(states))
    deliver(account.maildir, b"Subject: hi\n\nthere\n", seen=False)
    took = wait_for(lambda: len(account.index.emails) == 1)
    assert took < 1.0
    assert "EmailDelivery" in changed[-1]  # RFC 8621 §1.5: new mail arrived


def test_a_stream_of_flag_changes_is_reconciled_in_batches(
    watched: tuple[Account, Watcher],
) -> None:
    """A lone change is taken after a short wait; changes that keep coming (a client
    storing flags one message at a time) are taken in batches, not one by one."""
    account, watcher = watched
    paths = [deliver(account.maildir, f"Subject: {n}\n\nx\n".encode()) for n in range(40)]
    wait_for(lambda: len(account.index.emails) == 40)
    time.sleep(0.2)  # a quiet spell: the next batch is a first one again
    before = watcher.batches
    for path in paths:
        base, _, flags = path.name.partition(":2,")
        os.rename(path, path.with_name(f"{base}:2,{''.join(sorted(flags + 'F'))}"))
        time.sleep(0.015)
    wait_for(lambda: all("$flagged" in e.keywords for e in account.index.emails.values()))
    assert watcher.batches - before <= 10  # one per rename with the short wait throughout


def test_our_own_writes_commit_nothing_more(watched: tuple[Account, Watcher]) -> None:
    from maildir_jmap.mail.mailbox_set import MailboxSetRecords

    account, watcher = watched
    modseq_before = account.index.modseq
    with account.lock:
        MailboxSetRecords(account, False).create(
            Context(username="u", accounts={}, limits=None),  # type: ignore[arg-type]
            "k",
            {"name": "Mine"},
        )
    after_write = account.index.modseq
    assert after_write > modseq_before
    wait_for(lambda: watcher.batches >= 1)
    time.sleep(0.2)
    assert account.index.modseq == after_write  # the events found nothing to do


def test_our_email_writes_are_already_applied_when_their_events_arrive(
    watched: tuple[Account, Watcher],
) -> None:
    """DESIGN: our own writes update the index in the same critical section, so the
    inotify events of a flag rename, a move and a new message change nothing."""
    account, watcher = watched
    deliver(account.maildir, b"Subject: one\n\nx\n", flags="S")
    wait_for(lambda: len(account.index.emails) == 1)
    (rec,) = account.index.emails.values()
    target = next(m.id for m in account.index.mailboxes.values() if m.levels)
    batches = watcher.batches
    with account.lock:
        records = EmailSetRecords(account)
        ctx = Context(username="u", accounts={}, limits=None)  # type: ignore[arg-type]
        records.update(ctx, rec.id, {"keywords/$flagged": True, "mailboxIds": {target: True}})
        records.create(ctx, "n", {"mailboxIds": {target: True}, "subject": "new"})
        records.commit()
    after_write = account.index.modseq
    wait_for(lambda: watcher.batches > batches)
    time.sleep(0.2)
    assert account.index.modseq == after_write


def test_periodic_rescan_sweeps_expired_uploads(tmp_path: Path) -> None:
    root = tmp_path / "M"
    make_folder(root, marker=False)
    account = Account.open("u", root, tmp_path / "s", upload_expiry=60)
    old = account.blobs.directory / ("a" * 64)
    old.write_bytes(b"old")
    os.utime(old, (time.time() - 120, time.time() - 120))
    watcher = Watcher(account, rescan_every=0.2)
    watcher._thread.start()
    try:
        wait_for(lambda: not old.exists(), timeout=3)
    finally:
        watcher.stop()


def test_periodic_rescan_catches_what_no_event_told(tmp_path: Path) -> None:
    root = tmp_path / "M"
    make_folder(root, marker=False)
    account = Account.open("u", root, tmp_path / "s")
    watcher = Watcher(account, rescan_every=0.3)
    watcher._thread.start()  # the worker alone: no inotify events at all
    try:
        deliver(root, b"Subject: silent\n\nx\n", flags="S")
        wait_for(lambda: len(account.index.emails) == 1, timeout=3)
    finally:
        watcher.stop()


def test_queue_overflow_triggers_a_full_rescan(tmp_path: Path) -> None:
    root = tmp_path / "M"
    make_folder(root, marker=False)
    account = Account.open("u", root, tmp_path / "s")
    watcher = Watcher(account, rescan_every=3600)
    watcher._thread.start()
    watcher._overflow.attach()  # what start() does, without inotify's own events
    try:
        deliver(root, b"Subject: lost event\n\nx\n", flags="S")
        logging.getLogger("watchdog.observers.inotify_c").warning(
            "Inotify queue overflowed; filesystem events were lost"
        )
        wait_for(lambda: len(account.index.emails) == 1, timeout=3)
    finally:
        watcher.stop()


# -- with a real Dovecot ---------------------------------------------------------------


@pytest.fixture(params=["maildir++", "fs"])
def neighbours(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Dovecot, Account, Watcher]]:
    layout = {"maildir++": MAILDIRPP, "fs": FS}[request.param]
    root = tmp_path / "Maildir"
    make_folder(root, marker=False)
    dovecot = Dovecot(root, tmp_path / "dovecot", request.param).start()
    account = Account.open("alice", root, tmp_path / "state", layout=layout)
    watcher = Watcher(account).start()
    try:
        yield dovecot, account, watcher
    finally:
        watcher.stop()
        dovecot.stop()


def subjects(account: Account) -> dict[str, set[str]]:
    return {e.subject: e.keywords for e in account.index.emails.values()}


@needs_dovecot
def test_imap_operations_become_jmap_changes(neighbours: tuple[Dovecot, Account, Watcher]) -> None:
    dovecot, account, _ = neighbours
    sep = "." if account.layout is MAILDIRPP else "/"
    client = dovecot.imap()
    try:
        client.append("INBOX", r"(\Seen)", None, b"Subject: one\r\n\r\n1\r\n")
        client.append("INBOX", None, None, b"Subject: two\r\n\r\n2\r\n")
        wait_for(lambda: set(subjects(account)) == {"one", "two"})
        ids = {e.subject: e.id for e in account.index.emails.values()}
        client.select("INBOX")
        client.store("2", "+FLAGS", r"(\Flagged $Work)")
        wait_for(lambda: subjects(account)["two"] == {"$flagged", "$work"})
        client.create("Archive")
        wait_for(lambda: any(m.levels == ("Archive",) for m in account.index.mailboxes.values()))
        archive = next(m.id for m in account.index.mailboxes.values() if m.levels == ("Archive",))
        client.copy("1", "Archive")
        wait_for(lambda: len(account.index.emails[ids["one"]].files) == 2)
        client.store("1", "+FLAGS", r"(\Deleted)")
        client.expunge()
        wait_for(lambda: account.index.emails[ids["one"]].mailbox_ids == {archive})
        client.subscribe("Archive")
        wait_for(lambda: account.index.mailboxes[archive].subscribed)
        client.rename("Archive", f"Projects{sep}Old")
        wait_for(
            lambda: (
                account.index.mailboxes.get(archive) is not None
                and account.index.mailboxes[archive].levels == ("Projects", "Old")
            )
        )
        client.select(f"Projects{sep}Old")
        client.store("1", "+FLAGS", r"(\Deleted)")
        client.expunge()
        wait_for(lambda: ids["one"] not in account.index.emails)
        assert account.index.emails[ids["two"]].id == ids["two"]  # ids never change
    finally:
        client.logout()


@needs_dovecot
def test_a_burst_of_a_thousand_flag_changes_ends_consistent(
    neighbours: tuple[Dovecot, Account, Watcher],
) -> None:
    dovecot, account, watcher = neighbours
    client = dovecot.imap()
    try:
        for n in range(20):
            client.append("INBOX", None, None, f"Subject: m{n}\r\n\r\n{n}\r\n".encode())
        client.select("INBOX")
        for round_ in range(50):
            flag = r"\Seen" if round_ % 2 == 0 else r"\Flagged"
            client.store("1:20", "+FLAGS" if round_ % 3 else "-FLAGS", f"({flag})")
        typ, data = client.fetch("1:20", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK"
        expected: dict[str, set[str]] = {}
        for item in data:
            if isinstance(item, tuple):
                head, body = item
                subject = body.decode().split(":", 1)[1].strip()
                flags = head.decode().split("FLAGS (", 1)[1].split(")", 1)[0].split()
                expected[subject] = {
                    {"\\Seen": "$seen", "\\Flagged": "$flagged", "\\Recent": ""}.get(f, f.lower())
                    for f in flags
                } - {""}
        wait_for(lambda: subjects(account) == expected, timeout=10)
        assert watcher.batches < 1000  # debounced into batches, not one reconcile per event
        assert not account.rescan()  # a full rescan agrees: nothing was missed
    finally:
        client.logout()


@needs_dovecot
def test_imap_store_is_pushed_over_eventsource_rfc8620_7_3(
    tmp_path: Path, password_hashes: dict[str, str]
) -> None:
    root = tmp_path / "Maildir"
    make_folder(root, marker=False)
    dovecot = Dovecot(root, tmp_path / "dovecot").start()
    try:
        client = dovecot.imap()
        client.append("INBOX", None, None, b"Subject: push me\r\n\r\nx\r\n")
        users = UserDirectory({"alice": User("alice", root, password_hashes["alice"])})
        app = create_app(Config(state_dir=tmp_path / "state"), users, registry=build_registry())
        auth = ("alice", PASSWORDS["alice"])
        with LiveServer(app) as server:
            session = httpx.get(server.url + "/jmap/session", auth=auth).json()
            account_id = session["primaryAccounts"][MAIL]
            url = server.url + "/jmap/eventsource/?types=Email,Mailbox&closeafter=state&ping=0"
            stored = threading.Event()

            def store() -> None:
                client.select("INBOX")
                stored.set()
                client.store("1", "+FLAGS", r"(\Seen)")

            started = time.monotonic()
            with httpx.stream("GET", url, auth=auth, timeout=10) as response:
                threading.Timer(0.2, store).start()
                events = read_events(response.iter_lines(), 1)
            latency = time.monotonic() - started - 0.2
            account = app.state.server.account(users.get("alice"))
            assert events[0][0] == "state"
            changed = events[0][1]["changed"][account_id]
            assert changed["Email"] == account.state(EMAIL)
            assert changed["Mailbox"] == account.state(MAILBOX)
            assert latency < 2.0
        client.logout()
        body = {"using": [CORE, MAIL], "methodCalls": []}
        assert body  # the server shut down cleanly with its watcher
    finally:
        dovecot.stop()
    assert os.path.exists(root)


def test_new_mail_in_the_inbox_is_an_email_delivery_but_a_filing_is_not(
    watched: tuple[Account, Watcher],
) -> None:
    account, _ = watched
    changed: list[dict[str, str]] = []
    account.listeners.append(lambda acct, states: changed.append(states))
    deliver(account.maildir, b"Subject: to cur\n\nx\n", flags="S")  # straight into INBOX/cur
    wait_for(lambda: len(changed) == 1)
    assert "EmailDelivery" in changed[-1]
    deliver(account.maildir / ".Archive", b"Subject: filed\n\ny\n", flags="S")
    wait_for(lambda: len(changed) == 2)
    assert "EmailDelivery" not in changed[-1]


def test_a_rewritten_but_unchanged_dovecot_keywords_lists_nothing(
    watched: tuple[Account, Watcher],
) -> None:
    """Dovecot rewrites dovecot-keywords when it syncs a mailbox; only a changed
    letter mapping makes the folder be listed again (MAILDIR.md §5)."""
    account, watcher = watched
    keywords = account.maildir / "dovecot-keywords"
    keywords.write_text("0 work\n")
    wait_for(lambda: watcher.batches >= 1)
    time.sleep(0.3)  # writing in place gives create and modify events: let both land
    batches = watcher.batches
    for _ in range(3):
        staging = keywords.with_name("dovecot-keywords.lock")
        staging.write_text("0 work\n")
        os.rename(staging, keywords)  # same content, a new file: as Dovecot does it
    time.sleep(0.3)
    assert watcher.batches == batches
    staging.write_text("0 work\n1 home\n")
    os.rename(staging, keywords)
    wait_for(lambda: watcher.batches > batches)


@pytest.mark.parametrize("layout", [MAILDIRPP, FS])
def test_a_folder_made_over_jmap_is_watched_at_once(tmp_path: Path, layout: Layout) -> None:
    """Issue 14: JMAP builds a folder in tmp/ and renames it into place; the
    recursive inotify watch lost that race, so deliveries (and files IMAP moves
    there) stayed invisible until the periodic rescan. Each of twelve folders gets
    a delivery right after it is made, and every one is seen within a second."""
    from maildir_jmap.mail.mailbox_set import MailboxSetRecords

    root = tmp_path / "M"
    make_folder(root, marker=False)
    account = Account.open("u", root, tmp_path / "s", layout=layout)
    watcher = Watcher(account, rescan_every=3600).start()
    ctx = Context(username="u", accounts={}, limits=None)  # type: ignore[arg-type]
    try:
        for n in range(12):
            with account.lock:
                MailboxSetRecords(account, False).create(ctx, "k", {"name": f"Box{n}"})
        time.sleep(0.6)  # the tree events' rescan is over: from now on only watches help
        for n in range(12):
            box = next(m for m in account.index.mailboxes.values() if m.levels == (f"Box{n}",))
            deliver(root / box.directory, f"Subject: in {n}\n\nx\n".encode(), seen=False)
        wait_for(lambda: len(account.index.emails) == 12, timeout=1)
        # A file moved in by another writer (IMAP MOVE is a rename) is followed too.
        inbox_file = deliver(root, b"Subject: moved\n\nx\n", flags="S")
        wait_for(lambda: len(account.index.emails) == 13)
        (moved,) = [e for e in account.index.emails.values() if e.subject == "moved"]
        target = next(m for m in account.index.mailboxes.values() if m.levels == ("Box3",))
        os.rename(inbox_file, root / target.directory / "cur" / inbox_file.name)
        wait_for(lambda: account.index.emails[moved.id].mailbox_ids == {target.id}, timeout=2)
    finally:
        watcher.stop()
