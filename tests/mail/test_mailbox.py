"""Mailbox (RFC 8621 §2) over the real ASGI app, on the demo Maildir."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from maildir_jmap.store.folders import read_subscriptions
from maildir_jmap.store.maildir import deliver
from tests.mail.conftest import Jmap


def tree(root: Path) -> set[str]:
    """Every path under ``root`` (to prove nothing else was touched)."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


async def test_get_every_property_rfc8621_2(jmap: Jmap) -> None:
    boxes = await jmap.mailboxes()
    assert set(boxes) == {"Inbox", "Sent", "Archive", "Drafts", "Trash"}
    inbox = boxes["Inbox"]
    assert inbox["role"] == "inbox"
    assert inbox["parentId"] is None
    assert inbox["sortOrder"] == 0
    # Demo INBOX: "Lunch" (seen) + its unread reply, the photo (unread), the newsletter.
    assert (inbox["totalEmails"], inbox["unreadEmails"]) == (4, 3)
    assert (inbox["totalThreads"], inbox["unreadThreads"]) == (3, 3)
    assert inbox["myRights"]["mayRename"] is False
    assert inbox["myRights"]["mayDelete"] is False
    assert inbox["myRights"]["mayAddItems"] is True
    assert boxes["Sent"]["role"] == "sent"
    assert boxes["Sent"]["isSubscribed"] is True
    assert boxes["Drafts"]["unreadEmails"] == 0  # $draft is never unread
    assert set(inbox) == {
        "id", "name", "parentId", "role", "sortOrder", "totalEmails", "unreadEmails",
        "totalThreads", "unreadThreads", "myRights", "isSubscribed",
    }  # fmt: skip


async def test_get_with_properties_and_unknown_ids_rfc8620_5_1(jmap: Jmap) -> None:
    boxes = await jmap.mailboxes()
    result = await jmap.call(
        "Mailbox/get", ids=[boxes["Sent"]["id"], "Bnope"], properties=["name", "role"]
    )
    assert result["list"] == [{"id": boxes["Sent"]["id"], "name": "Sent", "role": "sent"}]
    assert result["notFound"] == ["Bnope"]
    assert (await jmap.error("Mailbox/get", properties=["colour"]))["type"] == "invalidArguments"


async def test_changes_after_a_flag_change_are_counts_only_rfc8621_2_2(
    jmap: Jmap, maildir: Path
) -> None:
    state = (await jmap.call("Mailbox/get", ids=[]))["state"]
    unread = next((maildir / "cur").glob("*:2,"))
    os.rename(unread, unread.with_name(unread.name + "S"))
    jmap.account.rescan()
    changes = await jmap.call("Mailbox/changes", sinceState=state)
    boxes = await jmap.mailboxes()
    inbox = boxes["Inbox"]
    # The reply was the Lunch thread's only unread message, and that thread is
    # also in Sent: Sent's unreadThreads moves too (RFC 8621 §2).
    assert sorted(changes["updated"]) == sorted([inbox["id"], boxes["Sent"]["id"]])
    assert boxes["Sent"]["unreadThreads"] == 0
    assert changes["updatedProperties"] == [
        "totalEmails", "unreadEmails", "totalThreads", "unreadThreads",
    ]  # fmt: skip
    assert inbox["unreadEmails"] == 2


async def test_changes_after_a_rename_are_not_counts_only_rfc8621_2_2(jmap: Jmap) -> None:
    boxes = await jmap.mailboxes()
    state = (await jmap.call("Mailbox/get", ids=[]))["state"]
    await jmap.call("Mailbox/set", update={boxes["Archive"]["id"]: {"name": "Old stuff"}})
    changes = await jmap.call("Mailbox/changes", sinceState=state)
    assert changes["updated"] == [boxes["Archive"]["id"]]
    assert changes["updatedProperties"] is None


async def test_query_filters_and_sorts_rfc8621_2_3(jmap: Jmap) -> None:
    boxes = await jmap.mailboxes()
    ids = {m["id"]: name for name, m in boxes.items()}
    by_name = await jmap.call("Mailbox/query", sort=[{"property": "name"}])
    assert [ids[i] for i in by_name["ids"]] == ["Archive", "Drafts", "Inbox", "Sent", "Trash"]
    roles = await jmap.call("Mailbox/query", filter={"hasAnyRole": True, "name": "r"})
    assert {ids[i] for i in roles["ids"]} == {"Archive", "Drafts", "Trash"}
    inbox_role = await jmap.call("Mailbox/query", filter={"role": "inbox"})
    assert [ids[i] for i in inbox_role["ids"]] == ["Inbox"]
    bad = await jmap.error("Mailbox/query", filter={"colour": "red"})
    assert bad["type"] == "unsupportedFilter"
    bad_sort = await jmap.error("Mailbox/query", sort=[{"property": "totalEmails"}])
    assert bad_sort["type"] == "unsupportedSort"


async def test_sort_and_filter_as_tree_rfc8621_2_3(jmap: Jmap) -> None:
    result = await jmap.call(
        "Mailbox/set",
        create={
            "z": {"name": "Zoo"},
            "a": {"name": "Aardvark", "parentId": "#z"},
            "b": {"name": "Bee"},
        },
    )
    assert result["notCreated"] is None
    boxes = await jmap.mailboxes()
    ids = {m["id"]: name for name, m in boxes.items()}
    as_tree = await jmap.call("Mailbox/query", sort=[{"property": "name"}], sortAsTree=True)
    names = [ids[i] for i in as_tree["ids"]]
    assert names.index("Zoo") + 1 == names.index("Zoo/Aardvark")  # children follow parents
    flat = await jmap.call("Mailbox/query", sort=[{"property": "name"}])
    assert next(ids[i] for i in flat["ids"]) == "Zoo/Aardvark"
    only = await jmap.call("Mailbox/query", filter={"name": "aardvark"}, filterAsTree=True)
    assert only["ids"] == []  # its parent does not match
    bad = await jmap.error("Mailbox/query", sortAsTree="yes")
    assert bad["type"] == "invalidArguments"


async def test_create_child_of_created_and_of_inbox_on_disk_rfc8621_2_5(
    jmap: Jmap, maildir: Path
) -> None:
    result = await jmap.call(
        "Mailbox/set",
        create={
            "p": {"name": "Projects"},
            "c": {"name": "Grüße 2024", "parentId": "#p", "isSubscribed": False},
            "i": {"name": "Receipts", "parentId": (await jmap.mailboxes())["Inbox"]["id"]},
        },
    )
    assert result["notCreated"] is None
    created = result["created"]
    assert set(created["p"]) >= {"id", "myRights", "totalEmails", "isSubscribed", "sortOrder"}
    assert "isSubscribed" not in created["c"]  # sent by the client
    assert (maildir / ".Projects" / "cur").is_dir()
    assert (maildir / ".Projects" / "maildirfolder").exists()
    assert (maildir / ".Projects.Gr&APwA3w-e 2024" / "new").is_dir()
    assert (maildir / ".INBOX.Receipts" / "tmp").is_dir()
    subscriptions = read_subscriptions(maildir)
    assert ("Projects",) in subscriptions
    assert ("Projects", "Grüße 2024") not in subscriptions
    boxes = await jmap.mailboxes()
    assert boxes["Projects/Grüße 2024"]["parentId"] == created["p"]["id"]
    assert boxes["Inbox/Receipts"]["isSubscribed"] is True


@pytest.mark.parametrize(
    "name",
    [
        "",
        "..",
        ".",
        "../x",
        "a/b",
        "a.b",
        "x\x00",
        "new\nline",
        "cur",
        "tmp",
        "dovecot.index",
        "x" * 1000,
        " padded",
        ".hidden",
        5,
        None,
        ["list"],
    ],
)
async def test_hostile_names_are_invalid_properties_and_touch_nothing(
    jmap: Jmap, maildir: Path, name: Any
) -> None:
    before = tree(maildir)
    parent_before = tree(maildir.parent)
    result = await jmap.call("Mailbox/set", create={"k": {"name": name}})
    error = result["notCreated"]["k"]
    assert error["type"] == "invalidProperties"
    assert error["properties"] == ["name"]
    assert tree(maildir) == before
    assert tree(maildir.parent) == parent_before


async def test_create_errors_rfc8621_2_5(jmap: Jmap) -> None:
    boxes = await jmap.mailboxes()
    result = await jmap.call(
        "Mailbox/set",
        create={
            "dup": {"name": "Sent"},
            "role": {"name": "Another trash", "role": "trash"},
            "badrole": {"name": "Weird", "role": "spaceship"},
            "inboxrole": {"name": "Inbox 2", "role": "inbox"},
            "parent": {"name": "Orphan", "parentId": "Bnope"},
            "server": {"name": "Counted", "totalEmails": 5},
            "sort": {"name": "Sorted", "sortOrder": -1},
            "noname": {"parentId": boxes["Sent"]["id"]},
        },
    )
    errors = result["notCreated"]
    assert result["created"] is None
    # RFC 8620 §5.3 alreadyExists, with the id of the Mailbox that has the name.
    assert errors["dup"]["type"] == "alreadyExists"
    assert errors["dup"]["existingId"] == boxes["Sent"]["id"]
    assert errors["role"]["properties"] == ["role"]
    assert errors["badrole"]["properties"] == ["role"]
    assert errors["inboxrole"]["properties"] == ["role"]
    assert errors["parent"]["properties"] == ["parentId"]
    assert errors["server"]["properties"] == ["totalEmails"]
    assert errors["sort"]["properties"] == ["sortOrder"]
    assert errors["noname"]["properties"] == ["name"]


async def test_creates_run_in_reference_order_rfc8620_5_3(jmap: Jmap, maildir: Path) -> None:
    """§5.3: the server MUST order creates so that #references resolve, whatever
    order the client wrote them in."""
    result = await jmap.call(
        "Mailbox/set",
        create={
            "grandchild": {"name": "C", "parentId": "#child"},
            "child": {"name": "B", "parentId": "#par"},
            "par": {"name": "A"},
        },
    )
    assert result["notCreated"] is None
    assert set(result["created"]) == {"grandchild", "child", "par"}
    assert (maildir / ".A.B.C" / "cur").is_dir()
    boxes = await jmap.mailboxes()
    assert boxes["A/B/C"]["parentId"] == result["created"]["child"]["id"]
    # A real cycle cannot resolve: each member fails on its parentId, nothing on disk.
    before = tree(maildir)
    cycle = await jmap.call(
        "Mailbox/set",
        create={"x": {"name": "X", "parentId": "#y"}, "y": {"name": "Y", "parentId": "#x"}},
    )
    assert cycle["created"] is None
    assert {k: v["properties"] for k, v in cycle["notCreated"].items()} == {
        "x": ["parentId"],
        "y": ["parentId"],
    }
    assert tree(maildir) == before


async def test_create_lists_every_bad_property_rfc8620_5_3(jmap: Jmap, maildir: Path) -> None:
    before = tree(maildir)
    result = await jmap.call(
        "Mailbox/set",
        create={"k": {"name": "../x", "sortOrder": -1, "isSubscribed": "yes", "role": "nope"}},
    )
    error = result["notCreated"]["k"]
    assert error["type"] == "invalidProperties"
    assert sorted(error["properties"]) == ["isSubscribed", "name", "role", "sortOrder"]
    assert tree(maildir) == before


async def test_changes_with_a_created_mailbox_are_not_counts_only_rfc8621_2_2(
    jmap: Jmap, maildir: Path
) -> None:
    """§2.2: updatedProperties is null unless only counts changed; a Mailbox created
    in the same window means the client must refetch."""
    state = (await jmap.call("Mailbox/get", ids=[]))["state"]
    unread = next((maildir / "cur").glob("*:2,"))
    os.rename(unread, unread.with_name(unread.name + "S"))
    jmap.account.rescan()
    await jmap.call("Mailbox/set", create={"n": {"name": "Brand new"}})
    changes = await jmap.call("Mailbox/changes", sinceState=state)
    assert changes["created"]
    assert changes["updated"]
    assert changes["updatedProperties"] is None


async def test_rename_and_move_keep_ids_and_subscriptions_rfc8621_2_5(
    jmap: Jmap, maildir: Path
) -> None:
    created = (
        await jmap.call(
            "Mailbox/set",
            create={"p": {"name": "Work"}, "c": {"name": "Reports", "parentId": "#p"}},
        )
    )["created"]
    work, reports = created["p"]["id"], created["c"]["id"]
    archive = (await jmap.mailboxes())["Archive"]["id"]
    result = await jmap.call("Mailbox/set", update={work: {"name": "Job", "parentId": archive}})
    assert result["updated"] == {work: None}
    assert (maildir / ".Archive.Job" / "cur").is_dir()
    assert (maildir / ".Archive.Job.Reports" / "cur").is_dir()
    assert not (maildir / ".Work").exists()
    boxes = await jmap.mailboxes()
    assert boxes["Archive/Job"]["id"] == work
    assert boxes["Archive/Job/Reports"]["id"] == reports
    subscriptions = read_subscriptions(maildir)
    assert ("Archive", "Job", "Reports") in subscriptions  # MAILDIR.md §9: moved by us
    assert ("Work", "Reports") not in subscriptions


async def test_update_errors_rfc8621_2_5(jmap: Jmap) -> None:
    boxes = await jmap.mailboxes()
    inbox, sent, archive = boxes["Inbox"]["id"], boxes["Sent"]["id"], boxes["Archive"]["id"]
    child = await jmap.call("Mailbox/set", create={"c": {"name": "Kid", "parentId": archive}})
    kid = child["created"]["c"]["id"]
    result = await jmap.call(
        "Mailbox/set",
        update={
            inbox: {"name": "Renamed inbox"},
            sent: {"role": "trash"},
            archive: {"parentId": kid},
            "Bnope": {"name": "x"},
            kid: {"totalEmails": 99},
            boxes["Drafts"]["id"]: {"myRights/mayDelete": False},
        },
    )
    errors = result["notUpdated"]
    assert errors[inbox]["type"] == "forbidden"
    assert errors[sent]["properties"] == ["role"]
    assert errors[archive]["properties"] == ["parentId"]  # no loops
    assert errors["Bnope"]["type"] == "notFound"
    assert errors[kid]["properties"] == ["totalEmails"]
    assert errors[boxes["Drafts"]["id"]]["properties"] == ["myRights"]
    same = await jmap.call("Mailbox/set", update={kid: {"totalEmails": 0, "sortOrder": 3}})
    assert same["updated"] == {kid: None}  # server-set values equal to the current are fine


async def test_role_and_subscription_updates(jmap: Jmap, maildir: Path) -> None:
    boxes = await jmap.mailboxes()
    archive = boxes["Archive"]["id"]
    await jmap.call("Mailbox/set", update={archive: {"role": None, "isSubscribed": False}})
    boxes = await jmap.mailboxes()
    assert boxes["Archive"]["role"] is None
    assert ("Archive",) not in read_subscriptions(maildir)
    created = await jmap.call("Mailbox/set", create={"x": {"name": "Old mail", "role": "archive"}})
    assert created["created"]["x"]["id"]


async def test_destroy_rules_rfc8621_2_5(jmap: Jmap, maildir: Path) -> None:
    boxes = await jmap.mailboxes()
    inbox, sent, archive = boxes["Inbox"]["id"], boxes["Sent"]["id"], boxes["Archive"]["id"]
    await jmap.call("Mailbox/set", create={"c": {"name": "Kid", "parentId": archive}})
    result = await jmap.call("Mailbox/set", destroy=[inbox, sent, archive, "Bnope"])
    errors = result["notDestroyed"]
    assert errors[inbox]["type"] == "forbidden"
    assert errors[sent]["type"] == "mailboxHasEmail"
    assert errors[archive]["type"] == "mailboxHasChild"
    assert errors["Bnope"]["type"] == "notFound"
    assert (maildir / ".Sent" / "cur").is_dir()


async def test_destroy_with_remove_emails_keeps_copies_elsewhere_rfc8621_2_5(
    jmap: Jmap, maildir: Path
) -> None:
    sent_file = next((maildir / ".Sent" / "cur").iterdir())
    os.link(sent_file, maildir / ".Archive" / "cur" / sent_file.name)  # an IMAP COPY
    lonely = deliver(maildir / ".Sent", b"Subject: only here\n\nbye\n", flags="S")
    jmap.account.rescan()
    boxes = await jmap.mailboxes()
    state = (await jmap.call("Mailbox/get", ids=[]))["state"]
    result = await jmap.call(
        "Mailbox/set", destroy=[boxes["Sent"]["id"]], onDestroyRemoveEmails=True
    )
    assert result["destroyed"] == [boxes["Sent"]["id"]]
    assert not (maildir / ".Sent").exists()
    assert (maildir / ".Archive" / "cur" / sent_file.name).exists()  # the copy stays
    assert not lonely.exists()
    changes = await jmap.call("Mailbox/changes", sinceState=state)
    assert changes["destroyed"] == [boxes["Sent"]["id"]]
    assert boxes["Archive"]["id"] in changes["updated"]
    account = jmap.account
    subjects = sorted(e.subject for e in account.index.emails.values())
    assert "only here" not in subjects
    assert "Re: Lunch on Friday?" in subjects  # still in Archive


async def test_destroy_empty_mailbox_and_on_disk_changes_follow(jmap: Jmap, maildir: Path) -> None:
    boxes = await jmap.mailboxes()
    result = await jmap.call("Mailbox/set", destroy=[boxes["Trash"]["id"]])
    assert result["destroyed"] == [boxes["Trash"]["id"]]
    assert not (maildir / ".Trash").exists()
    assert ("Trash",) not in read_subscriptions(maildir)
    assert not jmap.account.rescan()  # our own writes are already in the index


async def test_if_in_state_rfc8620_5_3(jmap: Jmap) -> None:
    error = await jmap.error("Mailbox/set", ifInState="nope-1", create={"x": {"name": "X"}})
    assert error["type"] == "stateMismatch"
    assert "X" not in await jmap.mailboxes()


async def test_query_changes_rfc8621_2_4(jmap: Jmap) -> None:
    query = {"sort": [{"property": "name"}]}
    before = await jmap.call("Mailbox/query", **query)
    await jmap.call("Mailbox/set", create={"n": {"name": "Bills"}})
    after = await jmap.call("Mailbox/query", **query)
    delta = await jmap.call("Mailbox/queryChanges", sinceQueryState=before["queryState"], **query)
    ids = [i for i in before["ids"] if i not in delta["removed"]]
    for item in delta["added"]:
        ids.insert(item["index"], item["id"])
    assert ids == after["ids"]


async def test_read_only_account_refuses_mailbox_set(
    jmap: Jmap, maildir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Maildir the server may not write is a read-only account (RFC 8620 §2); as
    root every directory is writable, so the check itself is replaced here."""
    from maildir_jmap.store.account import Account

    monkeypatch.setattr(Account, "is_read_only", property(lambda self: True))
    before = tree(maildir)
    error = await jmap.error("Mailbox/set", create={"x": {"name": "X"}})
    assert error["type"] == "accountReadOnly"
    boxes = await jmap.mailboxes()
    assert boxes["Inbox"]["myRights"]["mayAddItems"] is False
    assert boxes["Inbox"]["myRights"]["mayReadItems"] is True
    assert tree(maildir) == before


def test_mailbox_changes_are_pushed_over_eventsource_rfc8620_7_3(
    tmp_path: Path, password_hashes: dict[str, str], maildir: Path
) -> None:
    import threading

    import httpx

    from maildir_jmap.config import Config
    from maildir_jmap.core.capabilities import CORE, MAIL
    from maildir_jmap.http.app import create_app
    from maildir_jmap.server.registry import build_registry
    from maildir_jmap.users import User, UserDirectory
    from tests.conftest import PASSWORDS, LiveServer
    from tests.http.test_push import read_events

    users = UserDirectory({"alice": User("alice", maildir, password_hashes["alice"])})
    app = create_app(Config(state_dir=tmp_path / "s"), users, registry=build_registry())
    auth = ("alice", PASSWORDS["alice"])
    with LiveServer(app) as server:
        session = httpx.get(server.url + "/jmap/session", auth=auth).json()
        account = session["primaryAccounts"][MAIL]

        def create() -> None:
            body = {
                "using": [CORE, MAIL],
                "methodCalls": [
                    [
                        "Mailbox/set",
                        {"accountId": account, "create": {"k": {"name": "Pushed"}}},
                        "c",
                    ]
                ],
            }
            httpx.post(session["apiUrl"], json=body, auth=auth)

        url = server.url + "/jmap/eventsource/?types=Mailbox&closeafter=state&ping=0"
        with httpx.stream("GET", url, auth=auth, timeout=10) as response:
            threading.Timer(0.3, create).start()
            events = read_events(response.iter_lines(), 1)
        state = httpx.post(
            session["apiUrl"],
            json={
                "using": [CORE, MAIL],
                "methodCalls": [["Mailbox/get", {"accountId": account, "ids": []}, "c"]],
            },
            auth=auth,
        ).json()["methodResponses"][0][1]["state"]
    assert events == [("state", {"@type": "StateChange", "changed": {account: {"Mailbox": state}}})]
