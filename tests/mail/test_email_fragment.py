"""Emails spliced from JSON text (mail/email_fragment.py, issue 18) are the Emails
mail/email_view.py builds, key for key and value for value, list views and whole
messages alike (every fetch*BodyValues and maxBodyValueBytes of RFC 8621 §4.2);
result references (RFC 8620 §3.7) read into them; envelopes kept before they
were text are rewritten once, body views kept before are read as they are."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest

from maildir_jmap.core.types import Serialized, format_epoch, format_utc_date
from maildir_jmap.mail.email import EmailRecords
from maildir_jmap.mail.email_view import BODY, INDEX_PROPERTIES
from maildir_jmap.mime.parse import parse
from maildir_jmap.mime.summary import blob_base
from maildir_jmap.mime.views import (
    ENVELOPE,
    KEPT,
    BodyText,
    body_view,
    envelope_as_text,
    envelope_text,
)
from maildir_jmap.store.account import Account
from maildir_jmap.store.maildir import deliver, make_folder
from maildir_jmap.store.views import ViewStore, view_key
from tests.mail.conftest import Jmap

DATA = Path(__file__).parent.parent / "data" / "email"
LIST_VIEW = ["from", "subject", "preview", "keywords", "mailboxIds", "threadId", "receivedAt"]
SYNC = [*INDEX_PROPERTIES, *(p for p in ENVELOPE if p != "references")]
PROPERTY_SETS = [
    LIST_VIEW,
    SYNC,
    [*INDEX_PROPERTIES, *ENVELOPE],
    [*INDEX_PROPERTIES, *KEPT],  # every property spliced from the envelope as it is kept
    [*(INDEX_PROPERTIES - {"blobId"}), *KEPT],  # bench/compare.py's initial sync
    ["id"],
    ["blobId", "size"],
    ["hasAttachment", "receivedAt", "mailboxIds"],
    ["sentAt", "cc"],
]


def plain(value: Any) -> Any:
    """What a client reads: the value written as JSON and read back."""
    return orjson.loads(orjson.dumps(value))


@pytest.fixture
def corpus(tmp_path: Path) -> Account:
    """Every golden message (non-ASCII names, encoded words, groups, missing and
    repeated fields), indexed as Dovecot's files would be."""
    root = tmp_path / "Maildir"
    make_folder(root, marker=False)
    for n, eml in enumerate(sorted(DATA.glob("*.eml"))):
        deliver(root, eml.read_bytes(), flags="S" if n % 2 else "FS", received=1_700_000_000 + n)
    return Account.open("u", root, tmp_path / "state")


@pytest.mark.parametrize("properties", PROPERTY_SETS)
def test_spliced_emails_are_the_built_ones(corpus: Account, properties: list[str]) -> None:
    wanted = frozenset(properties) | {"id"}
    spliced, missing = EmailRecords(corpus, serialized=True).get(None, wanted, {})
    built, _ = EmailRecords(corpus).get(None, wanted, {})
    assert not missing
    assert all(isinstance(e, Serialized) for e in spliced)
    assert all(isinstance(e, dict) for e in built)
    assert plain(spliced) == plain(built)
    assert len(spliced) == len(list(DATA.glob("*.eml")))


def test_what_cannot_be_spliced_is_built(corpus: Account) -> None:
    """``headers``, body parts with other than the default bodyProperties and an
    Email whose envelope is not kept come from email_json; the JSON is the same
    either way."""
    for extra in ("headers", "header:X-Mailer:asText"):
        got, _ = EmailRecords(corpus, serialized=True).get(None, frozenset({"id", extra}), {})
        assert all(isinstance(e, dict) for e in got)
    other_parts = {"bodyProperties": ["partId", "type", "header:Content-Type"]}
    wanted = frozenset({"id", "bodyStructure", "textBody"})
    got, _ = EmailRecords(corpus, serialized=True).get(None, wanted, other_parts)
    assert all(isinstance(e, dict) for e in got)
    assert plain(got) == plain(EmailRecords(corpus).get(None, wanted, other_parts)[0])
    ids = list(corpus.index.emails)
    corpus.views.keep_only(ids[1:])  # the first Email's views are gone
    records = EmailRecords(corpus, serialized=True)
    got, _ = records.get(ids, frozenset(SYNC), {})
    assert plain(got) == plain(EmailRecords(corpus).get(ids, frozenset(SYNC), {})[0])
    assert ids[0] in corpus.views.envelopes(ids[:1])  # made from the file and kept


async def test_references_read_into_spliced_emails(jmap: Jmap) -> None:
    """Through the real app (which writes with orjson, so Email/get splices):
    ``/list/*/threadId`` of a spliced Email/get feeds Thread/get (§3.7), and a
    pointer to one whole Email resolves too."""
    responses = await jmap.request([
        ["Email/query", {"sort": [{"property": "receivedAt"}]}, "q"],
        ["Email/get", {"#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                       "properties": LIST_VIEW}, "g"],
        ["Thread/get", {"#ids": {"resultOf": "g", "name": "Email/get",
                                 "path": "/list/*/threadId"}}, "t"],
        ["Email/get", {"#ids": {"resultOf": "t", "name": "Thread/get",
                                "path": "/list/*/emailIds"}, "properties": ["subject"]}, "e"],
        ["Core/echo", {"#first": {"resultOf": "g", "name": "Email/get", "path": "/list/0"}}, "x"],
    ])  # fmt: skip
    names = [name for name, _, _ in responses]
    assert names == ["Email/query", "Email/get", "Thread/get", "Email/get", "Core/echo"], responses
    emails = responses[1][1]["list"]
    assert emails
    assert {e["threadId"] for e in emails} == {t["id"] for t in responses[2][1]["list"]}
    assert {e["id"] for e in responses[3][1]["list"]} >= {e["id"] for e in emails}
    assert responses[4][1]["first"] == emails[0]


async def test_the_app_splices_what_it_builds_in_process(jmap: Jmap) -> None:
    over_http = (await jmap.call("Email/get", ids=None, properties=SYNC))["list"]
    in_process, _ = EmailRecords(jmap.account).get(None, frozenset(SYNC) | {"id"}, {})
    assert over_http == plain(in_process)


def test_envelopes_kept_before_they_were_text_are_rewritten_once(tmp_path: Path) -> None:
    """Kept as a msgpack map (before issue 18's text), or as a msgpack array of
    values before previews were kept with it: both are rewritten as members
    (VERSION 2) and left out until ``add_previews`` gives them the records'
    previews, then read as envelopes made now are."""
    path = tmp_path / "views.sqlite"
    old = {p: None for p in ENVELOPE} | {
        "subject": "Grüße",
        "from": [{"name": None, "email": "a@b"}],
    }
    without_preview = msgpack.packb([orjson.dumps(old[p]) for p in ENVELOPE])
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE envelopes (email_id TEXT PRIMARY KEY, data BLOB)")  # as it was
    db.execute("INSERT INTO envelopes VALUES ('Mold', ?)", (msgpack.packb(old),))
    db.execute("INSERT INTO envelopes VALUES ('Mnew', ?)", (without_preview,))
    db.execute("PRAGMA user_version = 0")
    db.commit()
    db.close()
    store = ViewStore(path)
    assert store.envelopes(["Mold", "Mnew"]) == {}  # not whole: made again if read now
    assert store.add_previews({"Mold": "Hallo", "Mnew": "Hallo", "Mgone": "x"}) == 2
    assert store.add_previews({"Mold": "again", "Mnew": "again"}) == 0  # once
    texts = store.envelopes(["Mold", "Mnew"])
    assert texts["Mold"] == texts["Mnew"] == envelope_as_text(old, "Hallo")
    store.close()
    db = sqlite3.connect(path)
    rows = {
        email_id: db.execute(
            "SELECT data FROM envelope_members WHERE key = ? AND tail = ?", view_key(email_id)
        ).fetchone()[0]
        for email_id in ("Mold", "Mnew")
    }
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "envelopes" not in tables  # moved, not kept twice
    assert rows["Mold"] == rows["Mnew"] == texts["Mold"]
    assert rows["Mold"][0] == len(KEPT)  # the present form, not msgpack
    assert envelope_text(rows["Mold"]) == texts["Mold"]


WHOLE = frozenset({"id", "subject", *BODY})
FETCHES = [
    {},
    {"fetchAllBodyValues": True},
    {"fetchTextBodyValues": True},
    {"fetchHTMLBodyValues": True},
    {"fetchTextBodyValues": True, "fetchHTMLBodyValues": True, "fetchAllBodyValues": True},
]


@pytest.mark.parametrize("fetch", FETCHES)
@pytest.mark.parametrize("max_bytes", [0, 1, 3, 17, 64, 200, 100_000])
def test_spliced_whole_messages_are_the_built_ones(
    corpus: Account, fetch: dict[str, bool], max_bytes: int
) -> None:
    """Every golden message (nested multiparts, HTML, 8-bit and other charsets),
    cut at every kind of boundary: mid-codepoint, inside an HTML tag, not at all."""
    options = {**fetch, "maxBodyValueBytes": max_bytes} if max_bytes else fetch
    spliced, _ = EmailRecords(corpus, serialized=True).get(None, WHOLE, options)
    built, _ = EmailRecords(corpus).get(None, WHOLE, options)
    assert all(isinstance(e, Serialized) for e in spliced)
    assert plain(spliced) == plain(built)
    values = [v for e in plain(spliced) for v in e["bodyValues"].values()]
    assert bool(values) == bool(fetch)
    if max_bytes == 3:
        assert any(v["isTruncated"] for v in values) == bool(fetch)
    assert all(len(v["value"].encode()) <= (max_bytes or 10**9) for v in values)


def test_body_views_kept_before_they_were_text_are_read(corpus: Account) -> None:
    """A body view in the msgpack-map form of before (an index built by an earlier
    release) serves the same Email, and the same JSON, as one kept now."""
    ids = list(corpus.index.emails)
    options = {"fetchAllBodyValues": True, "maxBodyValueBytes": 40}
    before = plain(EmailRecords(corpus, serialized=True).get(ids, WHOLE, options)[0])
    db = sqlite3.connect(corpus.state_dir / "views.sqlite")
    for email_id in ids:
        root = parse(corpus.read_message(corpus.index.emails[email_id]) or b"")
        old = msgpack.packb(body_view(root, blob_base(email_id)))
        db.execute("UPDATE bodies SET data = ? WHERE email_id = ?", (old, email_id))
    db.commit()
    db.close()
    assert all(isinstance(b, BodyText) for b in corpus.views.bodies(ids).values())
    spliced, _ = EmailRecords(corpus, serialized=True).get(ids, WHOLE, options)
    assert all(isinstance(e, Serialized) for e in spliced)
    assert plain(spliced) == before


@pytest.mark.parametrize("seconds", [0, 1.999, 1_700_000_000.5, 253_402_300_799, -1.5, 86_399])
def test_format_epoch_is_format_utc_date(seconds: float) -> None:
    from datetime import UTC, datetime

    assert format_epoch(seconds) == format_utc_date(datetime.fromtimestamp(seconds, UTC))


def test_an_email_in_two_mailboxes_is_spliced_with_both(tmp_path: Path) -> None:
    """One message filed in INBOX and in a Maildir++ folder is one Email with two
    mailboxIds; spliced, it reads as built."""
    root = tmp_path / "Maildir"
    make_folder(root, marker=False)
    make_folder(root / ".Archive", marker=True)
    raw = next(iter(sorted(DATA.glob("*.eml")))).read_bytes()
    deliver(root, raw, flags="S", received=1_700_000_000)
    deliver(root / ".Archive", raw, flags="S", received=1_700_000_000)
    account = Account.open("u", root, tmp_path / "state")
    wanted = frozenset(SYNC) | {"preview"}
    spliced, _ = EmailRecords(account, serialized=True).get(None, wanted, {})
    built, _ = EmailRecords(account).get(None, wanted, {})
    assert plain(spliced) == plain(built)
    assert len(plain(spliced)[0]["mailboxIds"]) == 2
