"""Email/set and Email/import against a real Dovecot on the same Maildir, both
layouts: what JMAP does is what an IMAP client then sees (UID FETCH FLAGS,
SELECT counts, INTERNALDATE), and IMAP's APPEND/STORE in between is never lost
or duplicated (issue 5's "How we check")."""

from __future__ import annotations

import hashlib
import imaplib
import random
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from maildir_jmap.store.account import Account
from maildir_jmap.store.maildir import make_folder
from maildir_jmap.store.names import FS, MAILDIRPP
from tests.dovecot import Dovecot, available
from tests.jmap_calls import invoke

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))
LAYOUTS = {"maildir++": MAILDIRPP, "fs": FS}


@pytest.fixture(params=list(LAYOUTS))
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Dovecot, Account]]:
    root = tmp_path / "Maildir"
    make_folder(root, marker=False)
    dovecot = Dovecot(root, tmp_path / "dovecot", request.param).start()
    try:
        client = dovecot.imap()
        client.create("Archive")
        for i in range(3):
            append(client, "INBOX", f"message {i}")
        client.logout()
        account = Account.open("alice", root, tmp_path / "state", layout=LAYOUTS[request.param])
        yield dovecot, account
    finally:
        dovecot.stop()


def append(client: imaplib.IMAP4, mailbox: str, subject: str, flags: str = "") -> None:
    body = f"From: a@example.com\r\nSubject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}@x>\r\n\r\nbody of {subject}\r\n"
    typ, _ = client.append(mailbox, f"({flags})" if flags else None, None, body.encode())
    assert typ == "OK"


def call(account: Account, name: str, **args: Any) -> dict[str, Any]:
    """One method call through the sans-IO core, as the HTTP layer would make it."""
    method, result = invoke(account, name, **args)
    assert method == name, result
    return result


def by_subject(account: Account) -> dict[str, str]:
    return {rec.subject: rec.id for rec in account.index.emails.values()}


def box(account: Account, path: str) -> str:
    return next(
        m.id for m in account.index.mailboxes.values() if ("/".join(m.levels) or "INBOX") == path
    )


def imap_state(dovecot: Dovecot, mailbox: str) -> dict[str, set[str]]:
    """Subject -> IMAP flags of every message in ``mailbox``, from a fresh session."""
    client = dovecot.imap()
    try:
        typ, _ = client.select(mailbox)
        assert typ == "OK"
        typ, data = client.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK"
        out: dict[str, set[str]] = {}
        for item in data:
            if not isinstance(item, tuple):
                continue
            meta, header = item
            flags = re.search(rb"FLAGS \(([^)]*)\)", meta)
            subject = header.decode().split(":", 1)[1].strip()
            assert subject not in out, f"{subject} is there twice"
            out[subject] = set(flags.group(1).decode().split()) if flags else set()
        return out
    finally:
        client.logout()


def internaldate(dovecot: Dovecot, mailbox: str, subject: str) -> str:
    client = dovecot.imap()
    try:
        client.select(mailbox)
        typ, found = client.search(None, "SUBJECT", f'"{subject}"')
        assert typ == "OK"
        (number,) = found[0].split()
        typ, data = client.fetch(number.decode(), "(INTERNALDATE)")
        match = re.search(rb'INTERNALDATE "([^"]+)"', data[0])  # type: ignore[arg-type]
        assert match
        return match.group(1).decode()
    finally:
        client.logout()


def test_jmap_flag_move_create_destroy_is_what_imap_sees(
    setup: tuple[Dovecot, Account],
) -> None:
    dovecot, account = setup
    emails = by_subject(account)
    inbox, archive = box(account, "INBOX"), box(account, "Archive")
    result = call(
        account,
        "Email/set",
        update={
            emails["message 0"]: {"keywords/$flagged": True, "keywords/project-x": True},
            emails["message 1"]: {f"mailboxIds/{inbox}": None, f"mailboxIds/{archive}": True},
        },
        destroy=[emails["message 2"]],
        create={
            "d": {
                "mailboxIds": {inbox: True},
                "keywords": {"$draft": True, "$seen": True},
                "subject": "drafted",
                "receivedAt": "2025-06-07T08:09:10Z",
            }
        },
    )
    assert result["notUpdated"] is None
    assert result["notCreated"] is None
    assert result["destroyed"] == [emails["message 2"]]
    seen_inbox = imap_state(dovecot, "INBOX")
    assert set(seen_inbox) == {"message 0", "drafted"}
    assert {"\\Flagged", "project-x"} <= seen_inbox["message 0"]
    assert {"\\Draft", "\\Seen"} <= seen_inbox["drafted"]
    assert set(imap_state(dovecot, "Archive")) == {"message 1"}
    assert internaldate(dovecot, "INBOX", "drafted") == "07-Jun-2025 08:09:10 +0000"
    # And Dovecot's view leaves our index unchanged on the next reconcile.
    state = account.state("Email")
    account.rescan()
    assert account.state("Email") == state


def test_jmap_import_has_the_requested_internaldate(setup: tuple[Dovecot, Account]) -> None:
    dovecot, account = setup
    raw = b"From: b@example.com\r\nSubject: imported\r\n\r\nhi\r\n"
    digest = hashlib.sha256(raw).hexdigest()
    (account.blobs.directory / digest).write_bytes(raw)
    result = call(
        account,
        "Email/import",
        emails={
            "i": {
                "blobId": "G" + digest,
                "mailboxIds": {box(account, "Archive"): True},
                "receivedAt": "2024-02-29T23:59:58Z",
            }
        },
    )
    assert result["created"]["i"]["blobId"] == "G" + digest
    assert internaldate(dovecot, "Archive", "imported") == "29-Feb-2024 23:59:58 +0000"


def test_imap_changes_in_between_are_kept(setup: tuple[Dovecot, Account]) -> None:
    """IMAP STOREs a flag and APPENDs a message after our last reconcile; a JMAP
    flag change and a move on the same message keep IMAP's flag, and the new
    message is neither lost nor duplicated."""
    dovecot, account = setup
    emails = by_subject(account)
    archive = box(account, "Archive")
    client = dovecot.imap()
    client.select("INBOX")
    client.store("1:*", "+FLAGS", "(\\Seen)")
    append(client, "INBOX", "arrived meanwhile")
    client.logout()
    # No reconcile: our index still has the old file names.
    call(account, "Email/set", update={emails["message 0"]: {"keywords/$flagged": True}})
    call(account, "Email/set", update={emails["message 1"]: {"mailboxIds": {archive: True}}})
    inbox_now = imap_state(dovecot, "INBOX")
    assert inbox_now["message 0"] >= {"\\Seen", "\\Flagged"}
    assert inbox_now["message 2"] >= {"\\Seen"}
    assert "arrived meanwhile" in inbox_now
    assert imap_state(dovecot, "Archive")["message 1"] >= {"\\Seen"}
    account.rescan()
    assert "arrived meanwhile" in by_subject(account)
    got = call(account, "Email/get", ids=None, properties=["subject", "keywords", "mailboxIds"])
    subjects = [e["subject"] for e in got["list"]]
    assert sorted(subjects) == ["arrived meanwhile", "message 0", "message 1", "message 2"]


def test_imap_flag_flipping_while_jmap_moves_ends_consistent(
    setup: tuple[Dovecot, Account],
) -> None:
    """An IMAP client flips \\Flagged on every message while JMAP moves them back
    and forth; afterwards every message is present exactly once, in one folder,
    and carries the last writer's flags (the IMAP client writes last)."""
    dovecot, account = setup
    client = dovecot.imap()
    for i in range(3, 20):
        append(client, "INBOX", f"message {i}")
    client.logout()
    account.rescan()
    inbox, archive = box(account, "INBOX"), box(account, "Archive")
    ids = list(by_subject(account).values())
    rounds = 15
    stop = threading.Event()
    errors: list[BaseException] = []

    def flipper() -> None:
        client = dovecot.imap()
        try:
            rng = random.Random(7)
            while not stop.is_set():
                for mailbox in ("INBOX", "Archive"):
                    _, (count,) = client.select(mailbox)
                    if count == b"0":
                        continue  # "1:*" of an empty mailbox is BAD
                    op = "+FLAGS" if rng.random() < 0.5 else "-FLAGS"
                    client.store("1:*", op, "(\\Flagged)")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            client.logout()

    thread = threading.Thread(target=flipper)
    thread.start()
    try:
        for i in range(rounds):
            target = archive if i % 2 == 0 else inbox
            result = call(
                account,
                "Email/set",
                update={e: {"mailboxIds": {target: True}, "keywords/$seen": True} for e in ids},
            )
            assert result["notUpdated"] is None, result["notUpdated"]
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors, errors
    # The IMAP client writes last: set \\Flagged on everything where it lives now.
    client = dovecot.imap()
    for mailbox in ("INBOX", "Archive"):
        _, (count,) = client.select(mailbox)
        if count != b"0":
            client.store("1:*", "+FLAGS", "(\\Flagged)")
    client.logout()
    seen = {**imap_state(dovecot, "INBOX"), **imap_state(dovecot, "Archive")}
    assert sorted(seen) == sorted(f"message {i}" for i in range(20))
    final_box = "Archive" if (rounds - 1) % 2 == 0 else "INBOX"
    assert set(imap_state(dovecot, final_box)) == set(seen)
    for flags in seen.values():
        assert {"\\Flagged", "\\Seen"} <= flags
    account.rescan()
    for email_id in ids:
        rec = account.index.emails[email_id]  # ids survived every move
        assert len(rec.files) == 1
        assert {"$flagged", "$seen"} <= rec.keywords


def test_a_write_right_after_an_imap_move_finds_the_email(
    setup: tuple[Dovecot, Account],
) -> None:
    """Issue 14: Email/set right after Dovecot MOVEd the message (before any
    reconcile) answered notFound "expunged meanwhile". The write catches up with
    the disk and applies the patch where the Email is now."""
    dovecot, account = setup
    ids = by_subject(account)
    client = dovecot.imap()
    try:
        client.select("INBOX")
        typ, _ = client.uid("MOVE", "1:2", "Archive")  # messages 0 and 1, no reconcile after
        assert typ == "OK"
    finally:
        client.logout()
    result = call(
        account,
        "Email/set",
        update={
            ids["message 0"]: {"keywords/$flagged": True},
            ids["message 1"]: {f"mailboxIds/{box(account, 'INBOX')}": True},
        },
    )
    assert result["notUpdated"] is None, result["notUpdated"]
    assert set(result["updated"]) == {ids["message 0"], ids["message 1"]}

    def flags(mailbox: str) -> dict[str, set[str]]:
        return {k: v - {r"\Recent"} for k, v in imap_state(dovecot, mailbox).items()}

    assert flags("Archive") == {"message 0": {r"\Flagged"}, "message 1": set()}
    assert flags("INBOX") == {"message 1": set(), "message 2": set()}
    assert account.index.emails[ids["message 0"]].mailbox_ids == {box(account, "Archive")}
    # A message really expunged is still notFound.
    client = dovecot.imap()
    try:
        client.select("INBOX")
        client.uid("STORE", "3", "+FLAGS", r"(\Deleted)")
        client.expunge()
    finally:
        client.logout()
    gone = call(account, "Email/set", update={ids["message 2"]: {"keywords/$seen": True}})
    assert gone["notUpdated"][ids["message 2"]]["type"] == "notFound"


def dovecot_complaints(dovecot: Dovecot) -> list[str]:
    log = (dovecot.workdir / "dovecot.log").read_text(errors="replace")
    return [line for line in log.splitlines() if "Warning:" in line or "Error:" in line]


def test_moving_back_never_makes_dovecot_see_an_expunged_message_reappear(
    setup: tuple[Dovecot, Account],
) -> None:
    """Issue 14: a JMAP move put a base name back into a folder it had left while
    Dovecot's uidlist still listed it; Dovecot then logged "Expunged message
    reappeared" or "Duplicate file entry". The file arrives under a new unique
    name instead; the Email id (from content) is unchanged."""
    dovecot, account = setup
    ids = by_subject(account)
    inbox, archive = box(account, "INBOX"), box(account, "Archive")
    client = dovecot.imap()
    try:
        client.select("INBOX")
        for _ in range(3):
            for subject in ("message 0", "message 1", "message 2"):
                call(account, "Email/set", update={ids[subject]: {"mailboxIds": {archive: True}}})
                client.noop()  # Dovecot notices the expunge, keeps the uidlist line
                call(account, "Email/set", update={ids[subject]: {"mailboxIds": {inbox: True}}})
                client.noop()
        # And a copy into a folder where IMAP just expunged the same message.
        client.uid("COPY", "1:*", "Archive")
        client.select("Archive")
        client.store("1:*", "+FLAGS", r"(\Deleted)")
        client.expunge()
        call(account, "Email/set", update={ids["message 0"]: {f"mailboxIds/{archive}": True}})
        client.noop()
    finally:
        client.logout()
    assert {k: v - {r"\Recent"} for k, v in imap_state(dovecot, "INBOX").items()} == {
        f"message {n}": set() for n in range(3)
    }
    assert set(imap_state(dovecot, "Archive")) == {"message 0"}
    assert by_subject(account) == ids  # ids never change
    account.rescan()
    assert by_subject(account) == ids
    assert dovecot_complaints(dovecot) == []
