"""Email/set (RFC 8621 §4.6) through the real ASGI app on the demo Maildir: every
patch form, every SetError, and what lands on disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from maildir_jmap.store.maildir import FileName
from tests.mail.conftest import Jmap


async def ids(jmap: Jmap) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Mailbox name -> id, subject -> Email (the newest of a subject)."""
    boxes = {name: m["id"] for name, m in (await jmap.mailboxes()).items()}
    found = (await jmap.call("Email/get", ids=None, properties=["subject", "keywords"]))["list"]
    return boxes, {e["subject"]: e for e in found}


def files_of(jmap: Jmap, email_id: str) -> list[Path]:
    account = jmap.account
    rec = account.index.emails[email_id]
    out = []
    for mailbox_id, subdir, base, info in rec.files:
        directory = account.index.mailboxes[mailbox_id].directory
        out.append(account.maildir / directory / subdir / (base + info))
    return out


async def set_one(jmap: Jmap, **args: Any) -> dict[str, Any]:
    return await jmap.call("Email/set", **args)


async def test_keywords_whole_value_and_patches_rfc8621_4_6(jmap: Jmap) -> None:
    _, emails = await ids(jmap)
    news = emails["This week: JMAP arrives next to your Dovecot"]
    eid = news["id"]
    result = await set_one(jmap, update={eid: {"keywords/$seen": True, "keywords/custom": True}})
    assert result["updated"] == {eid: None}
    (path,) = files_of(jmap, eid)
    assert path.exists()
    assert path.parent.name == "cur"
    parsed = FileName.parse(path.name)
    assert "S" in parsed.flags
    assert parsed.letters
    assert "0 custom" in (path.parent.parent / "dovecot-keywords").read_text()
    got = await jmap.call("Email/get", ids=[eid], properties=["keywords"])
    assert got["list"][0]["keywords"] == {"$seen": True, "custom": True}
    await set_one(jmap, update={eid: {"keywords/custom": None}})
    await set_one(jmap, update={eid: {"keywords": {"$flagged": True, "$Answered": True}}})
    got = await jmap.call("Email/get", ids=[eid], properties=["keywords"])
    # §4.1.1: keywords are case-insensitive and come back lowercase.
    assert got["list"][0]["keywords"] == {"$flagged": True, "$answered": True}
    (path,) = files_of(jmap, eid)
    assert FileName.parse(path.name).flags == "FR"


async def test_move_is_one_rename_and_keeps_the_id(jmap: Jmap) -> None:
    boxes, emails = await ids(jmap)
    eid = emails["Grüße aus Köln 📷"]["id"]
    (before,) = files_of(jmap, eid)
    inode = before.stat().st_ino
    result = await set_one(
        jmap,
        update={
            eid: {f"mailboxIds/{boxes['Inbox']}": None, f"mailboxIds/{boxes['Archive']}": True}
        },
    )
    assert result["updated"] == {eid: None}
    (after,) = files_of(jmap, eid)
    assert not before.exists()
    assert after.parent.parent.name == ".Archive"
    # A new base in the new folder (store/maildir.py arriving_name), the same inode.
    assert FileName.parse(after.name).base != FileName.parse(before.name).base
    assert after.stat().st_ino == inode  # a rename, not a copy
    got = await jmap.call("Email/get", ids=[eid], properties=["mailboxIds", "keywords"])
    assert got["list"][0] == {
        "id": eid,
        "mailboxIds": {boxes["Archive"]: True},
        "keywords": {"$flagged": True},
    }
    # A rescan of the disk agrees with what the write committed.
    state = jmap.account.state("Email")
    jmap.account.rescan()
    assert jmap.account.state("Email") == state


async def test_adding_a_mailbox_links_a_copy_and_keywords_reach_every_copy(jmap: Jmap) -> None:
    boxes, emails = await ids(jmap)
    eid = emails["Lunch on Friday?"]["id"]
    await set_one(jmap, update={eid: {f"mailboxIds/{boxes['Archive']}": True}})
    first, second = files_of(jmap, eid)
    assert first.stat().st_ino == second.stat().st_ino  # hard link
    await set_one(jmap, update={eid: {"keywords/$flagged": True}})
    for path in files_of(jmap, eid):
        assert "F" in FileName.parse(path.name).flags
    counts = await jmap.mailboxes()
    assert counts["Archive"]["totalEmails"] == 1
    await set_one(jmap, update={eid: {"mailboxIds": {boxes["Archive"]: True}}})
    (only,) = files_of(jmap, eid)
    assert only.parent.parent.name == ".Archive"
    assert not first.exists() or first == only


async def test_mailbox_created_in_the_same_request_by_creation_id(jmap: Jmap) -> None:
    _, emails = await ids(jmap)
    eid = emails["Lunch on Friday?"]["id"]
    responses = await jmap.request(
        [
            ["Mailbox/set", {"create": {"box": {"name": "Projects"}}}, "0"],
            ["Email/set", {"update": {eid: {"mailboxIds": {"#box": True}}}}, "1"],
        ]
    )
    new_id = responses[0][1]["created"]["box"]["id"]
    assert responses[1][1]["updated"] == {eid: None}
    got = await jmap.call("Email/get", ids=[eid], properties=["mailboxIds"])
    assert got["list"][0]["mailboxIds"] == {new_id: True}


async def test_update_errors_rfc8621_4_6(jmap: Jmap) -> None:
    boxes, emails = await ids(jmap)
    eid = emails["Lunch on Friday?"]["id"]
    state = jmap.account.state("Email")
    result = await set_one(
        jmap,
        update={
            eid: {"mailboxIds": {}},
            "Mnothere": {"keywords/$seen": True},
        },
    )
    assert result["notUpdated"][eid]["type"] == "invalidProperties"
    assert result["notUpdated"][eid]["properties"] == ["mailboxIds"]
    assert result["notUpdated"]["Mnothere"]["type"] == "notFound"
    cases: list[tuple[dict[str, Any], str, list[str] | None]] = [
        ({"subject": "changed"}, "invalidProperties", ["subject"]),
        ({"blobId": "G00"}, "invalidProperties", ["blobId"]),
        ({"keywords/$seen": False}, "invalidProperties", ["keywords"]),
        ({"keywords/bad(word": True}, "invalidProperties", ["keywords"]),
        ({"keywords": {"$seen": 1}}, "invalidProperties", ["keywords"]),
        ({"mailboxIds/Bnope": True}, "invalidProperties", ["mailboxIds"]),
        ({"mailboxIds": ["x"]}, "invalidProperties", ["mailboxIds"]),
        ({"keywords": {}, "keywords/$seen": True}, "invalidPatch", None),
        ({"keywords/a/b": True}, "invalidProperties", ["keywords"]),
    ]
    for patch, kind, properties in cases:
        result = await set_one(jmap, update={eid: patch})
        error = result["notUpdated"][eid]
        assert error["type"] == kind, (patch, error)
        if properties is not None:
            assert error["properties"] == properties, patch
    # Nothing changed on disk or in the index.
    assert jmap.account.state("Email") == state
    assert boxes["Inbox"] in jmap.account.index.emails[eid].mailbox_ids


async def test_twenty_seventh_keyword_is_refused_and_nothing_moves(jmap: Jmap) -> None:
    _, emails = await ids(jmap)
    eid = emails["Lunch on Friday?"]["id"]
    keywords = {f"k{i}": True for i in range(26)}
    assert (await set_one(jmap, update={eid: {"keywords": keywords}}))["updated"]
    (path,) = files_of(jmap, eid)
    state = jmap.account.state("Email")
    result = await set_one(jmap, update={eid: {"keywords/k26": True}})
    assert result["notUpdated"][eid]["type"] == "tooManyKeywords"
    assert path.exists()
    assert jmap.account.state("Email") == state
    got = await jmap.call("Email/get", ids=[eid], properties=["keywords"])
    assert len(got["list"][0]["keywords"]) == 26


async def test_destroy_removes_every_copy_and_leaves_a_tombstone(jmap: Jmap) -> None:
    boxes, emails = await ids(jmap)
    eid = emails["Lunch on Friday?"]["id"]
    await set_one(jmap, update={eid: {f"mailboxIds/{boxes['Archive']}": True}})
    paths = files_of(jmap, eid)
    assert len(paths) == 2
    state = jmap.account.state("Email")
    result = await set_one(jmap, destroy=[eid, "Mnothere"])
    assert result["destroyed"] == [eid]
    assert result["notDestroyed"] == {"Mnothere": {"type": "notFound", "description": None}}
    assert not any(p.exists() for p in paths)
    changes = await jmap.call("Email/changes", sinceState=state)
    assert changes["destroyed"] == [eid]
    thread = await jmap.call("Thread/get", ids=None)
    assert all(eid not in t["emailIds"] for t in thread["list"])


async def test_if_in_state_mismatch_rfc8620_5_3(jmap: Jmap) -> None:
    _, emails = await ids(jmap)
    eid = emails["Lunch on Friday?"]["id"]
    error = await jmap.error(
        "Email/set", ifInState="nope-1", update={eid: {"keywords/$flagged": True}}
    )
    assert error["type"] == "stateMismatch"
    state = jmap.account.state("Email")
    result = await set_one(jmap, ifInState=state, update={eid: {"keywords/$flagged": True}})
    assert result["oldState"] == state
    assert result["newState"] != state


async def test_create_draft_round_trip_and_disk(jmap: Jmap) -> None:
    boxes, _ = await ids(jmap)
    upload = await jmap.http.post(
        f"/jmap/upload/{jmap.account_id}/",
        content=b"%PDF-1.4 fake",
        headers={"Content-Type": "application/pdf"},
    )
    blob = upload.json()["blobId"]
    create = {
        "mailboxIds": {boxes["Drafts"]: True},
        "keywords": {"$draft": True, "$seen": True},
        "receivedAt": "2026-03-04T05:06:07Z",
        "from": [{"name": "Zoë Ångström", "email": "zoe@demo.example"}],
        "to": [{"name": "Ada", "email": "ada@demo.example"}],
        "subject": "Plan für Freitag ✓",
        "textBody": [{"partId": "t"}],
        "htmlBody": [{"partId": "h", "type": "text/html"}],
        "attachments": [{"blobId": blob, "type": "application/pdf", "name": "plan.pdf"}],
        "bodyValues": {"t": {"value": "Bis dann!\n"}, "h": {"value": "<p>Bis dann!</p>\n"}},
    }
    result = await set_one(jmap, create={"d": create})
    created = result["created"]["d"]
    assert set(created) == {"id", "blobId", "threadId", "size"}
    got = (
        await jmap.call(
            "Email/get",
            ids=[created["id"]],
            properties=[
                "mailboxIds", "keywords", "receivedAt", "from", "to", "subject",
                "textBody", "htmlBody", "attachments", "bodyValues", "size", "blobId",
                "hasAttachment", "preview",
            ],
            fetchAllBodyValues=True,
        )
    )["list"][0]  # fmt: skip
    for key in ("mailboxIds", "keywords", "receivedAt", "from", "to", "subject"):
        assert got[key] == create[key], key
    assert got["size"] == created["size"]
    assert got["blobId"] == created["blobId"]
    assert got["hasAttachment"] is True
    assert got["preview"] == "Bis dann!"
    assert got["attachments"][0]["name"] == "plan.pdf"
    values = {got["bodyValues"][p["partId"]]["value"] for p in got["textBody"] + got["htmlBody"]}
    assert values == {"Bis dann!\n", "<p>Bis dann!</p>\n"}
    (path,) = files_of(jmap, created["id"])
    assert FileName.parse(path.name).flags == "DS"
    assert int(os.stat(path).st_mtime) == 1772600767  # receivedAt is Dovecot's INTERNALDATE
    download = await jmap.http.get(
        f"/jmap/download/{jmap.account_id}/{got['attachments'][0]['blobId']}/plan.pdf"
    )
    assert download.content == b"%PDF-1.4 fake"
    state = jmap.account.state("Email")
    jmap.account.rescan()
    assert jmap.account.state("Email") == state


async def test_create_errors_rfc8621_4_6(jmap: Jmap) -> None:
    boxes, _ = await ids(jmap)
    inbox = {boxes["Inbox"]: True}
    state = jmap.account.state("Email")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"subject": "no mailbox"}, "invalidProperties"),
        ({"mailboxIds": {"Bnope": True}}, "invalidProperties"),
        ({"mailboxIds": inbox, "keywords": ["$seen"]}, "invalidProperties"),
        ({"mailboxIds": inbox, "receivedAt": "yesterday"}, "invalidProperties"),
        ({"mailboxIds": inbox, "subject": "a\r\nBcc: x@y"}, "invalidProperties"),
        ({"mailboxIds": inbox, "id": "M1"}, "invalidProperties"),
        ({"mailboxIds": inbox, "attachments": [{"blobId": "Gmissing"}]}, "blobNotFound"),
    ]
    result = await set_one(jmap, create={str(i): c for i, (c, _) in enumerate(cases)})
    assert result["created"] is None
    for i, (_, kind) in enumerate(cases):
        assert result["notCreated"][str(i)]["type"] == kind, (i, result["notCreated"][str(i)])
    assert result["notCreated"]["6"]["notFound"] == ["Gmissing"]
    assert result["notCreated"]["4"]["properties"] == ["subject"]
    assert jmap.account.state("Email") == state


async def test_reply_created_joins_the_thread_rfc8621_3(jmap: Jmap) -> None:
    boxes, _ = await ids(jmap)
    first = (
        await jmap.call(
            "Email/query", filter={"subject": "Lunch on Friday"}, sort=[{"property": "receivedAt"}]
        )
    )["ids"][0]
    got = (await jmap.call("Email/get", ids=[first], properties=["messageId", "threadId"]))["list"][
        0
    ]
    result = await set_one(
        jmap,
        create={
            "r": {
                "mailboxIds": {boxes["Drafts"]: True},
                "inReplyTo": got["messageId"],
                "references": got["messageId"],
                "subject": "Re: Lunch on Friday?",
            }
        },
    )
    assert result["created"]["r"]["threadId"] == got["threadId"]
    thread = await jmap.call("Thread/get", ids=[got["threadId"]])
    assert result["created"]["r"]["id"] in thread["list"][0]["emailIds"]


async def test_create_then_update_by_creation_id_in_one_call(jmap: Jmap) -> None:
    boxes, _ = await ids(jmap)
    result = await set_one(
        jmap,
        create={"x": {"mailboxIds": {boxes["Drafts"]: True}, "subject": "draft"}},
        update={"#x": {"keywords/$flagged": True}},
    )
    eid = result["created"]["x"]["id"]
    assert result["updated"] == {eid: None}
    got = await jmap.call("Email/get", ids=[eid], properties=["keywords"])
    assert got["list"][0]["keywords"] == {"$flagged": True}


async def test_unread_counts_follow_seen(jmap: Jmap) -> None:
    _, emails = await ids(jmap)
    before = (await jmap.mailboxes())["Inbox"]["unreadEmails"]
    eid = emails["This week: JMAP arrives next to your Dovecot"]["id"]
    state = jmap.account.state("Mailbox")
    await set_one(jmap, update={eid: {"keywords/$seen": True}})
    assert (await jmap.mailboxes())["Inbox"]["unreadEmails"] == before - 1
    changes = await jmap.call("Mailbox/changes", sinceState=state)
    assert changes["updatedProperties"] == [
        "totalEmails", "unreadEmails", "totalThreads", "unreadThreads"
    ]  # fmt: skip


async def test_malformed_hostile_and_oversized_arguments_change_nothing_rfc8620_3_6_2(
    jmap: Jmap,
) -> None:
    """Wrong types are invalidArguments, too many objects requestTooLarge, hostile
    ids and names per-object SetErrors; the Maildir and the index stay as they were."""
    boxes, emails = await ids(jmap)
    eid = emails["Lunch on Friday?"]["id"]
    before = sorted(str(p) for p in jmap.account.maildir.rglob("*"))
    state = jmap.account.state("Email")
    for name, args in [
        ("Email/set", {"create": ["not", "an", "object"]}),
        ("Email/set", {"update": {eid: "keywords"}}),
        ("Email/set", {"destroy": "M1"}),
        ("Email/set", {"update": {eid: {}}, "bogus": 1}),
        ("Email/import", {"emails": [1]}),
        ("Email/parse", {"blobIds": "G1"}),
        ("Email/copy", {"fromAccountId": 5, "create": {}}),
        ("Blob/copy", {"fromAccountId": jmap.account_id, "blobIds": {}}),
        ("Email/set", {"update": {"../x": {"keywords/$seen": True}}}),  # not an Id
        ("Email/set", {"destroy": ["../../etc/passwd"]}),
    ]:
        error = await jmap.error(name, **args)
        assert error["type"] == "invalidArguments", (name, error)
    too_many = {f"c{i}": {"mailboxIds": {boxes["Inbox"]: True}} for i in range(1001)}
    assert (await jmap.error("Email/set", create=too_many))["type"] == "requestTooLarge"
    hostile = await set_one(
        jmap,
        create={"h": {"mailboxIds": {"../../etc": True}, "subject": "x"}},
        update={eid: {"mailboxIds/..%2F..": True}},
    )
    assert hostile["notCreated"]["h"]["type"] == "invalidProperties"
    assert hostile["notUpdated"][eid]["type"] == "invalidProperties"
    assert jmap.account.state("Email") == state
    assert sorted(str(p) for p in jmap.account.maildir.rglob("*")) == before
