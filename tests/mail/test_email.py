"""Email/get, Email/changes, Thread/get, Thread/changes (RFC 8621 §3, §4.2, §4.3)
over the demo Maildir through the real ASGI app."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from maildir_jmap.demo import _PIXEL
from tests.mail.conftest import Jmap
from tests.mail.test_email_import import import_one, inbox, upload


async def every(jmap: Jmap, **args: Any) -> list[dict[str, Any]]:
    result = await jmap.call("Email/get", ids=None, **args)
    assert result["notFound"] == []
    emails: list[dict[str, Any]] = result["list"]
    return emails


async def by_subject(jmap: Jmap, **args: Any) -> dict[str, dict[str, Any]]:
    """Subject -> Email (the demo's two "Re: Lunch" collapse; use every() for them)."""
    return {e["subject"]: e for e in await every(jmap, **args)}


async def test_default_properties_rfc8621_4_2(jmap: Jmap) -> None:
    emails = await by_subject(jmap)
    photo = emails["Grüße aus Köln 📷"]
    assert photo["from"] == [{"name": "José Müller", "email": "jose@demo.example"}]
    assert photo["to"] == [{"name": "alice", "email": "alice@demo.example"}]
    assert photo["cc"] is None
    assert photo["keywords"] == {"$flagged": True}
    assert photo["hasAttachment"] is True
    assert photo["preview"].startswith("Hallo! Anbei ein")
    assert photo["blobId"].startswith("G")
    assert photo["sentAt"].endswith("Z")
    assert photo["receivedAt"].endswith("Z")
    (attachment,) = photo["attachments"]
    assert attachment["name"] == "Kölner Dom.png"
    assert attachment["type"] == "image/png"
    assert attachment["disposition"] == "attachment"
    assert attachment["size"] == len(_PIXEL)
    assert attachment["blobId"] == f"P{photo['id'][1:]}_{attachment['partId']}"
    assert [p["type"] for p in photo["textBody"]] == ["text/plain"]
    assert photo["bodyValues"] == {}  # none asked for
    assert set(photo) == {
        "id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt", "messageId",
        "inReplyTo", "references", "sender", "from", "to", "cc", "bcc", "replyTo", "subject",
        "sentAt", "hasAttachment", "preview", "bodyValues", "textBody", "htmlBody", "attachments",
    }  # fmt: skip


async def test_received_at_is_the_file_mtime_maildir_md_2(jmap: Jmap, maildir: Path) -> None:
    emails = await by_subject(jmap, properties=["subject", "receivedAt"])
    news = next(maildir.glob("new/*"))
    from datetime import UTC, datetime

    expected = datetime.fromtimestamp(int(news.stat().st_mtime), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert emails["This week: JMAP arrives next to your Dovecot"]["receivedAt"] == expected


async def test_body_values_and_alternatives_rfc8621_4_2(jmap: Jmap) -> None:
    emails = await by_subject(
        jmap,
        properties=["subject", "textBody", "htmlBody", "bodyValues"],
        fetchHTMLBodyValues=True,
        maxBodyValueBytes=30,
    )
    news = emails["This week: JMAP arrives next to your Dovecot"]
    (html,) = news["htmlBody"]
    assert html["type"] == "text/html"
    assert [p["type"] for p in news["textBody"]] == ["text/plain"]
    value = news["bodyValues"][html["partId"]]
    assert value["isTruncated"] is True
    assert len(value["value"].encode()) <= 30
    assert value["isEncodingProblem"] is False


async def test_body_structure_keeps_sub_parts_whatever_body_properties_rfc8621_4_1_4(
    jmap: Jmap,
) -> None:
    """§4.1.4: bodyStructure is the full MIME structure. The demo webmail asks for
    bodyProperties without subParts and still walks the tree, so multiparts carry
    subParts; leaves get only what was asked for."""
    props = ["partId", "blobId", "size", "name", "type", "charset", "disposition", "cid"]
    emails = await by_subject(jmap, properties=["subject", "bodyStructure"], bodyProperties=props)
    news = emails["This week: JMAP arrives next to your Dovecot"]["bodyStructure"]
    assert news["type"].startswith("multipart/")
    assert news["partId"] is None
    leaves = [p for p in news["subParts"] if p["type"].startswith("text/")]
    assert leaves
    assert all(set(p) == set(props) for p in leaves)  # no subParts key on a leaf
    # Asked for explicitly, leaves say null (as before).
    asked = await by_subject(
        jmap, properties=["subject", "bodyStructure"], bodyProperties=[*props, "subParts"]
    )
    structure = asked["This week: JMAP arrives next to your Dovecot"]["bodyStructure"]
    assert all(p["subParts"] is None for p in structure["subParts"] if p["partId"])


async def test_headers_and_header_forms_rfc8621_4_1_3(jmap: Jmap) -> None:
    emails = await every(
        jmap,
        properties=[
            "subject",
            "headers",
            "header:Subject",
            "header:subject:asText",
            "header:From:asAddresses:all",
            "header:X-Missing:all",
            "messageId",
            "references",
        ],
    )
    third = next(e for e in emails if e["references"] and len(e["references"]) == 2)
    assert third["header:subject:asText"] == "Re: Lunch on Friday?"
    assert third["header:Subject"].startswith(" ")  # Raw keeps the space after the colon
    assert third["header:From:asAddresses:all"] == [
        [{"name": "Ada Lovelace", "email": "ada@demo.example"}]
    ]
    assert third["header:X-Missing:all"] == []
    assert {"name": "Subject", "value": third["header:Subject"]} in third["headers"]
    assert third["messageId"][0].endswith("@demo.example")


async def test_threads_rfc8621_3(jmap: Jmap) -> None:
    emails = await every(jmap, properties=["subject", "threadId", "receivedAt"])
    lunch = [e for e in emails if "Lunch" in e["subject"]]
    assert len(lunch) == 3
    assert len({e["threadId"] for e in lunch}) == 1
    thread = await jmap.call("Thread/get", ids=[lunch[0]["threadId"], "Tnope"])
    (found,) = thread["list"]
    assert thread["notFound"] == ["Tnope"]
    ordered = sorted(lunch, key=lambda e: e["receivedAt"])
    assert found["emailIds"] == [e["id"] for e in ordered]  # oldest first


async def test_changes_after_external_edits_rfc8621_4_3(jmap: Jmap, maildir: Path) -> None:
    email_state = (await jmap.call("Email/get", ids=[]))["state"]
    thread_state = (await jmap.call("Thread/get", ids=[]))["state"]
    unread = next((maildir / "cur").glob("*:2,"))
    os.rename(unread, unread.with_name(unread.name + "S"))
    jmap.account.rescan()
    changes = await jmap.call("Email/changes", sinceState=email_state)
    assert len(changes["updated"]) == 1
    assert changes["created"] == changes["destroyed"] == []
    threads = await jmap.call("Thread/changes", sinceState=thread_state)
    assert threads["updated"] == threads["created"] == threads["destroyed"] == []
    (email,) = (await jmap.call("Email/get", ids=changes["updated"], properties=["keywords"]))[
        "list"
    ]
    assert email["keywords"] == {"$seen": True}


async def test_a_file_renamed_by_dovecot_meanwhile_is_still_read(jmap: Jmap, maildir: Path) -> None:
    emails = await by_subject(jmap, properties=["subject"])
    target = emails["Lunch on Friday?"]["id"]
    path = next(
        p
        for p in (maildir / "cur").iterdir()
        if p.name.endswith(":2,S")
        and b"Lunch on Friday?" in p.read_bytes()
        and b"Re:" not in p.read_bytes()
    )
    os.rename(path, path.with_name(path.name.replace(":2,S", ":2,RS")))  # no reconcile yet
    (email,) = (await jmap.call("Email/get", ids=[target], properties=["subject"]))["list"]
    assert email["subject"] == "Lunch on Friday?"
    path.with_name(path.name.replace(":2,S", ":2,RS")).unlink()  # expunged, not yet seen
    # Until the reconcile sees the expunge (and the state moves on), the index still
    # has the Email: its envelope and body view come from the kept views, as
    # Dovecot's IMAP serves an expunged message's cached fields until its session
    # syncs; what only the file has (all its header fields) is gone.
    cached = await jmap.call("Email/get", ids=[target], properties=["subject", "textBody"])
    assert cached["list"][0]["subject"] == "Lunch on Friday?"
    assert cached["list"][0]["textBody"][0]["type"] == "text/plain"
    result = await jmap.call("Email/get", ids=[target], properties=["subject", "headers"])
    assert result["notFound"] == [target]


async def test_bad_arguments_rfc8620_3_6_2(jmap: Jmap) -> None:
    for args in (
        {"properties": ["header:From:asDate"]},
        {"properties": ["nonsense"]},
        {"bodyProperties": ["partId", "colour"]},
        {"fetchTextBodyValues": "yes"},
        {"maxBodyValueBytes": -1},
    ):
        error = await jmap.error("Email/get", ids=[], **args)
        assert error["type"] == "invalidArguments", args


async def test_download_message_and_parts_rfc8620_6_2(jmap: Jmap, maildir: Path) -> None:
    emails = await by_subject(jmap, properties=["subject", "blobId", "attachments", "size"])
    photo = emails["Grüße aus Köln 📷"]
    base = f"/jmap/download/{jmap.account_id}"
    whole = await jmap.http.get(
        f"{base}/{photo['blobId']}/m.eml", params={"accept": "message/rfc822"}
    )
    assert whole.status_code == 200
    assert whole.headers["content-type"].startswith("message/rfc822")
    assert len(whole.content) == photo["size"]  # the CRLF form, RFC822.SIZE
    assert b"\n" not in whole.content.replace(b"\r\n", b"")  # no bare LF: served as CRLF
    (attachment,) = photo["attachments"]
    part = await jmap.http.get(
        f"{base}/{attachment['blobId']}/x.png", params={"accept": "image/png"}
    )
    assert part.content == _PIXEL

    def other(blob: str) -> str:  # the same id with its last character changed
        return blob[:-1] + ("1" if blob[-1] == "0" else "0")

    for bogus in (other(photo["blobId"]), f"P{'0' * 24}_1", attachment["blobId"] + "9", "Pxyz"):
        assert (await jmap.http.get(f"{base}/{bogus}/n")).status_code == 404


async def test_envelope_and_body_come_from_kept_views_and_match_the_message(
    jmap: Jmap, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18: the convenience properties and, with the default bodyProperties,
    the whole body are served from the views made at index time (store/views.py),
    without reading a message file, identical to what parsing the message gives
    (asking for ``headers`` too makes Email/get parse each file)."""
    envelope = ["from", "to", "subject", "sentAt", "messageId", "references", "cc", "replyTo"]
    body = ["bodyStructure", "textBody", "htmlBody", "attachments", "bodyValues"]
    options = {"fetchAllBodyValues": True, "maxBodyValueBytes": 40}
    parsed = await every(jmap, properties=[*envelope, *body, "headers"], **options)
    reads: list[str] = []
    original = jmap.account.read_message

    def counted(rec: Any) -> bytes | None:
        reads.append(rec.id)
        return original(rec)

    monkeypatch.setattr(jmap.account, "read_message", counted)
    monkeypatch.setattr(jmap.account, "read_head", counted)
    kept = await every(jmap, properties=[*envelope, *body], **options)
    assert reads == []
    strip = {e["id"]: {k: v for k, v in e.items() if k != "headers"} for e in parsed}
    assert {e["id"]: e for e in kept} == strip
    assert any(v["isTruncated"] for e in kept for v in e["bodyValues"].values())
    # Other bodyProperties are not kept: those are parsed from the file.
    await every(jmap, properties=["bodyStructure"], bodyProperties=["partId", "headers"])
    assert len(reads) == len(kept)
    # Views of Emails that are gone go at compaction.
    gone = kept[0]["id"]
    await jmap.call("Email/set", destroy=[gone])
    jmap.account.compact()
    assert gone not in jmap.account.views.envelopes([gone])
    assert gone not in jmap.account.views.bodies([gone])


async def test_an_email_made_over_jmap_gets_its_views_on_first_read(jmap: Jmap) -> None:
    """Email/import files a message our own reconcile never parsed: its views
    are made on the first Email/get and kept."""
    blob = await upload(jmap, b"From: a@b.example\r\nSubject: Hi\r\n\r\nHello there\r\n")
    made = await import_one(jmap, blobId=blob, mailboxIds={await inbox(jmap): True})
    email_id = made["created"]["i"]["id"]
    assert jmap.account.views.bodies([email_id]) == {}
    first = await jmap.call("Email/get", ids=[email_id], properties=["subject", "bodyValues"],
                            fetchTextBodyValues=True)  # fmt: skip
    assert first["list"][0]["bodyValues"]["1"]["value"] == "Hello there\n"
    assert jmap.account.views.bodies([email_id])[email_id] is not None
