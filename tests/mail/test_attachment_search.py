"""Issue 18: search finds what users search for. RFC 8621 §4.4.1 ``text`` SHOULD
look inside any part that can be turned into text: an attachment's file name
and the text of text/* attachments are indexed (a word only an attachment's
name carried used to give 0 hits). Checked against Dovecot's IMAP SEARCH TEXT
on the same Maildir, the real counterpart a user compares us with."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from maildir_jmap.store.account import Account
from maildir_jmap.store.maildir import deliver
from tests.dovecot import Dovecot, available
from tests.mail.conftest import Jmap

WITH_ATTACHMENTS = (
    b"From: Ann <ann@example.org>\r\nTo: bob@example.org\r\nSubject: the numbers\r\n"
    b"Message-ID: <att-1@example.org>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
    b"--b\r\nContent-Type: application/pdf\r\n"
    b'Content-Disposition: attachment; filename="quarterly-zanzibar-report.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(b"%PDF-1.4 binary") + b"\r\n"
    b'--b\r\nContent-Type: text/csv; name="figures.csv"\r\n'
    b'Content-Disposition: attachment; filename="figures.csv"\r\n\r\n'
    b"region,amount\r\nkilimanjaro,42\r\n"
    b"--b--\r\n"
)
PLAIN = b"From: c@example.org\r\nSubject: lunch\r\nMessage-ID: <p-1@example.org>\r\n\r\nsoup\r\n"


async def ids_for(jmap: Jmap, condition: dict[str, str]) -> list[str]:
    result = await jmap.call("Email/query", filter=condition)
    ids: list[str] = result["ids"]
    return ids


@pytest.fixture
def mail(maildir: Path) -> Path:
    deliver(maildir, WITH_ATTACHMENTS, flags="S")
    deliver(maildir, PLAIN, flags="S")
    return maildir


async def test_text_finds_attachment_names_and_text_attachments(mail: Path, jmap: Jmap) -> None:
    named = await ids_for(jmap, {"text": "zanzibar"})
    assert len(named) == 1  # the file name's word
    inside = await ids_for(jmap, {"text": "kilimanjaro"})
    assert inside == named  # the text/csv attachment's content
    assert await ids_for(jmap, {"body": "kilimanjaro"}) == named  # a text/* body part
    assert await ids_for(jmap, {"body": "zanzibar"}) == []  # a name is not body text
    assert await ids_for(jmap, {"text": "soup"}) != named


def test_search_documents_come_from_the_index_build_not_a_second_read(
    tmp_path: Path, mail: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first search pays nothing: the documents were made from the parse the
    index build did (in the worker pool for a large Maildir), so a search right
    after opening never re-reads a message."""
    from maildir_jmap.store import account as account_module

    account = Account.open("alice", mail, tmp_path / "state")
    try:

        def no_second_read(raw: bytes) -> dict[str, str]:
            raise AssertionError("a message was read again to index it")

        monkeypatch.setattr(account_module, "search_document", no_second_read)
        assert account.sync_search() == 0
        assert len(account.search.search('"zanzibar"')) == 1
    finally:
        account.close()


def test_the_same_hits_as_dovecots_imap_search_text(tmp_path: Path, mail: Path) -> None:
    reason = available()
    if reason:
        pytest.skip(reason)
    dovecot = Dovecot(mail, tmp_path / "dovecot").start()
    account = Account.open("alice", mail, tmp_path / "state")
    try:
        imap = dovecot.imap()
        imap.select("INBOX", readonly=True)
        for word in ("zanzibar", "kilimanjaro", "soup", "nowhere"):
            _, found = imap.search(None, "TEXT", word)
            dovecot_hits = len(found[0].split())
            account.sync_search()
            assert len(account.search.search(f'"{word}"')) == dovecot_hits, word
        imap.logout()
    finally:
        account.close()
        dovecot.stop()
