"""Email/import (RFC 8621 §4.8) and Email/parse (§4.9) of uploaded blobs."""

from __future__ import annotations

import os
from typing import Any

from maildir_jmap.store.maildir import FileName
from tests.mail.conftest import Jmap

MESSAGE = (
    b"Received: from mx.example by mail.example; Tue, 03 Mar 2026 10:00:00 +0000\r\n"
    b"From: =?utf-8?q?Ren=C3=A9?= <rene@example.com>\r\n"
    b"To: alice@demo.example\r\n"
    b"Subject: Imported\r\n"
    b"Date: Tue, 03 Mar 2026 09:59:00 +0000\r\n"
    b"Message-ID: <imported-1@example.com>\r\n"
    b"\r\n"
    b"Hello from an import.\r\n"
)

INNER = b"From: x@inner.example\r\nSubject: The inner one\r\nMessage-ID: <in@x>\r\n\r\nInside.\r\n"
OUTER = (
    b"From: y@outer.example\r\nSubject: Forwarded\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
    b"--b\r\nContent-Type: message/rfc822\r\n\r\n" + INNER + b"\r\n--b--\r\n"
)


async def upload(jmap: Jmap, data: bytes, media: str = "message/rfc822") -> str:
    response = await jmap.http.post(
        f"/jmap/upload/{jmap.account_id}/", content=data, headers={"Content-Type": media}
    )
    assert response.status_code == 201, response.text
    blob: str = response.json()["blobId"]
    return blob


async def inbox(jmap: Jmap) -> str:
    box: str = (await jmap.mailboxes())["Inbox"]["id"]
    return box


async def import_one(jmap: Jmap, **spec: Any) -> dict[str, Any]:
    return await jmap.call("Email/import", emails={"i": spec})


async def test_import_with_keywords_and_received_at_rfc8621_4_8(jmap: Jmap) -> None:
    blob = await upload(jmap, MESSAGE)
    box = await inbox(jmap)
    state = jmap.account.state("Email")
    result = await import_one(
        jmap,
        blobId=blob,
        mailboxIds={box: True},
        keywords={"$seen": True, "work": True},
        receivedAt="2026-03-03T10:00:00Z",
    )
    created = result["created"]["i"]
    assert result["oldState"] == state
    assert result["newState"] == jmap.account.state("Email") != state
    assert created["blobId"] == blob  # already CRLF: the stored bytes are the upload
    got = (
        await jmap.call(
            "Email/get",
            ids=[created["id"]],
            properties=["subject", "from", "keywords", "receivedAt", "mailboxIds", "size"],
        )
    )["list"][0]
    assert got["from"] == [{"name": "René", "email": "rene@example.com"}]
    assert got["keywords"] == {"$seen": True, "work": True}
    assert got["receivedAt"] == "2026-03-03T10:00:00Z"
    assert got["size"] == len(MESSAGE) == created["size"]
    rec = jmap.account.index.emails[created["id"]]
    ((_, subdir, base, info),) = rec.files
    path = jmap.account.maildir / subdir / (base + info)
    assert int(os.stat(path).st_mtime) == 1772532000
    assert "S" in FileName.parse(path.name).flags


async def test_received_at_defaults_to_the_newest_received_field_rfc8621_4_8(jmap: Jmap) -> None:
    blob = await upload(jmap, MESSAGE)
    result = await import_one(jmap, blobId=blob, mailboxIds={await inbox(jmap): True})
    eid = result["created"]["i"]["id"]
    got = (await jmap.call("Email/get", ids=[eid], properties=["receivedAt"]))["list"][0]
    assert got["receivedAt"] == "2026-03-03T10:00:00Z"


async def test_importing_the_same_message_again_names_the_existing_id_rfc8621_4_8(
    jmap: Jmap,
) -> None:
    blob = await upload(jmap, MESSAGE)
    box = await inbox(jmap)
    first = (await import_one(jmap, blobId=blob, mailboxIds={box: True}))["created"]["i"]
    again = await import_one(jmap, blobId=blob, mailboxIds={box: True})
    error = again["notCreated"]["i"]
    assert error["type"] == "alreadyExists"
    assert error["existingId"] == first["id"]
    assert len(jmap.account.index.emails[first["id"]].files) == 1


async def test_lf_only_upload_is_stored_with_a_new_blob_id(jmap: Jmap) -> None:
    blob = await upload(jmap, MESSAGE.replace(b"\r\n", b"\n"))
    created = (await import_one(jmap, blobId=blob, mailboxIds={await inbox(jmap): True}))[
        "created"
    ]["i"]
    # §4.8: the message was changed (line endings), so the blobId differs.
    assert created["blobId"] != blob
    download = await jmap.http.get(f"/jmap/download/{jmap.account_id}/{created['blobId']}/m.eml")
    assert download.content == MESSAGE


async def test_import_errors_rfc8621_4_8(jmap: Jmap) -> None:
    box = await inbox(jmap)
    image = await upload(jmap, b"\x89PNG\r\n\x1a\n", "image/png")
    good = await upload(jmap, MESSAGE)
    state = jmap.account.state("Email")
    result = await jmap.call(
        "Email/import",
        emails={
            "noblob": {"blobId": "G" + "0" * 64, "mailboxIds": {box: True}},
            "wrongtype": {"blobId": 5, "mailboxIds": {box: True}},
            "nobox": {"blobId": good, "mailboxIds": {}},
            "badbox": {"blobId": good, "mailboxIds": {"Bnope": True}},
            "badkw": {"blobId": good, "mailboxIds": {box: True}, "keywords": {"a b": True}},
            "extra": {"blobId": good, "mailboxIds": {box: True}, "subject": "x"},
            "image": {"blobId": image, "mailboxIds": {box: True}},
        },
    )
    errors = result["notCreated"]
    assert errors["noblob"]["properties"] == ["blobId"]
    assert errors["wrongtype"]["properties"] == ["blobId"]
    assert errors["nobox"]["properties"] == ["mailboxIds"]
    assert errors["badbox"]["properties"] == ["mailboxIds"]
    assert errors["badkw"]["properties"] == ["keywords"]
    assert errors["extra"]["properties"] == ["subject"]
    assert errors["image"]["type"] == "invalidEmail"
    assert result["created"] is None
    assert jmap.account.state("Email") == state
    error = await jmap.error(
        "Email/import", ifInState="x-1", emails={"a": {"blobId": good, "mailboxIds": {box: True}}}
    )
    assert error["type"] == "stateMismatch"


async def test_parse_an_upload_and_its_attached_message_rfc8621_4_9(jmap: Jmap) -> None:
    blob = await upload(jmap, OUTER)
    result = await jmap.call(
        "Email/parse",
        blobIds=[blob, "G" + "1" * 64, await upload(jmap, b"", "text/plain")],
        properties=["subject", "id", "mailboxIds", "keywords", "receivedAt", "attachments"],
    )
    assert result["notFound"] == ["G" + "1" * 64]
    assert len(result["notParsable"]) == 1
    parsed = result["parsed"][blob]
    assert parsed["subject"] == "Forwarded"
    assert parsed["id"] is None
    assert parsed["mailboxIds"] is None
    assert parsed["keywords"] is None
    assert parsed["receivedAt"] is None
    (attached,) = parsed["attachments"]
    assert attached["type"] == "message/rfc822"
    inner = await jmap.call(
        "Email/parse",
        blobIds=[attached["blobId"]],
        properties=["subject", "textBody", "bodyValues"],
        fetchTextBodyValues=True,
    )
    inner_email = inner["parsed"][attached["blobId"]]
    assert inner_email["subject"] == "The inner one"
    (text,) = inner_email["textBody"]
    assert inner_email["bodyValues"][text["partId"]]["value"] == "Inside.\n"
    # The inner message's own parts download by their chained blobId.
    download = await jmap.http.get(f"/jmap/download/{jmap.account_id}/{text['blobId']}/t.txt")
    assert download.status_code == 200
    assert download.content == b"Inside.\r\n"


async def test_parse_default_properties_and_forbidden_form_rfc8621_4_9(jmap: Jmap) -> None:
    blob = await upload(jmap, MESSAGE)
    result = await jmap.call("Email/parse", blobIds=[blob])
    parsed = result["parsed"][blob]
    assert set(parsed) == {
        "messageId", "inReplyTo", "references", "sender", "from", "to", "cc", "bcc",
        "replyTo", "subject", "sentAt", "hasAttachment", "preview", "bodyValues",
        "textBody", "htmlBody", "attachments",
    }  # fmt: skip
    assert parsed["messageId"] == ["imported-1@example.com"]
    error = await jmap.error("Email/parse", blobIds=[blob], properties=["header:From:asDate"])
    assert error["type"] == "invalidArguments"


async def test_parse_of_a_stored_email_part(jmap: Jmap) -> None:
    blob = await upload(jmap, OUTER)
    created = (await import_one(jmap, blobId=blob, mailboxIds={await inbox(jmap): True}))[
        "created"
    ]["i"]
    got = (await jmap.call("Email/get", ids=[created["id"]], properties=["attachments"]))["list"]
    part_blob = got[0]["attachments"][0]["blobId"]
    parsed = await jmap.call("Email/parse", blobIds=[part_blob], properties=["subject", "threadId"])
    assert parsed["parsed"][part_blob]["subject"] == "The inner one"
    assert parsed["parsed"][part_blob]["threadId"] is None


async def test_import_needs_emails_rfc8621_4_8(jmap: Jmap) -> None:
    """§4.8: ``emails`` is an Id[EmailImport], not optional and not null."""
    assert (await jmap.error("Email/import"))["type"] == "invalidArguments"
    assert (await jmap.error("Email/import", emails=None))["type"] == "invalidArguments"
    assert (await jmap.call("Email/import", emails={}))["created"] is None


async def test_import_lists_every_bad_property_rfc8620_5_3(jmap: Jmap) -> None:
    result = await import_one(
        jmap, blobId="Gnope", mailboxIds={}, keywords={"bad word": True}, receivedAt="yesterday"
    )
    error = result["notCreated"]["i"]
    assert error["type"] == "invalidProperties"
    assert sorted(error["properties"]) == ["blobId", "keywords", "mailboxIds", "receivedAt"]


async def test_destroy_reimport_destroy_is_still_a_destroy_rfc8620_5_2(jmap: Jmap) -> None:
    """Ids come from content, so an Email can come back after its destroy. A client
    that knew it must still be told it is gone: the created-then-destroyed
    shortcut of §5.2 is only for ids it cannot have seen (issue 14's reproducer)."""
    box = await inbox(jmap)
    blob = await upload(jmap, MESSAGE)
    spec = {"blobId": blob, "mailboxIds": {box: True}}
    email_id = (await import_one(jmap, **spec))["created"]["i"]["id"]
    known = (await jmap.call("Email/get", ids=[]))["state"]
    await jmap.call("Email/set", destroy=[email_id])
    again = (await import_one(jmap, **spec))["created"]["i"]["id"]
    assert again == email_id
    back = await jmap.call("Email/changes", sinceState=known)
    assert back["updated"] == [email_id]  # the client had it; it is here again
    assert back["created"] == []
    await jmap.call("Email/set", destroy=[email_id])
    changes = await jmap.call("Email/changes", sinceState=known)
    assert changes["destroyed"] == [email_id]
    assert email_id not in changes["created"] + changes["updated"]
    # An id first created after the client's state is still left out entirely.
    other = await upload(jmap, MESSAGE.replace(b"Imported", b"Another one"))
    new_spec = {"blobId": other, "mailboxIds": {box: True}}
    fresh = (await import_one(jmap, **new_spec))["created"]["i"]["id"]
    await jmap.call("Email/set", destroy=[fresh])
    await import_one(jmap, **new_spec)
    await jmap.call("Email/set", destroy=[fresh])
    final = await jmap.call("Email/changes", sinceState=known)
    assert fresh not in final["created"] + final["updated"] + final["destroyed"]
    assert final["destroyed"] == [email_id]
