"""Email/query and Email/queryChanges (RFC 8621 §4.4, §4.5) on the demo Maildir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from maildir_jmap.mail.email_filter import base_subject
from maildir_jmap.store.maildir import deliver
from tests.mail.conftest import Jmap

NEWEST_FIRST = [{"property": "receivedAt", "isAscending": False}]


async def subjects(jmap: Jmap, ids: list[str]) -> list[str]:
    if not ids:
        return []
    found = {
        e["id"]: e["subject"]
        for e in (await jmap.call("Email/get", ids=ids, properties=["subject"]))["list"]
    }
    return [found[i] for i in ids]


async def query(jmap: Jmap, **args: Any) -> list[str]:
    return await subjects(jmap, (await jmap.call("Email/query", **args))["ids"])


async def test_inbox_newest_first_and_collapsed_rfc8621_4_4(jmap: Jmap) -> None:
    inbox = (await jmap.mailboxes())["Inbox"]["id"]
    flat = await query(jmap, filter={"inMailbox": inbox}, sort=NEWEST_FIRST)
    assert flat == [
        "This week: JMAP arrives next to your Dovecot",
        "Grüße aus Köln 📷",
        "Re: Lunch on Friday?",
        "Lunch on Friday?",
    ]
    collapsed = await query(
        jmap, filter={"inMailbox": inbox}, sort=NEWEST_FIRST, collapseThreads=True
    )
    assert collapsed == flat[:3]  # the Lunch thread once, at its newest member
    everything = await jmap.call(
        "Email/query", sort=NEWEST_FIRST, collapseThreads=True, calculateTotal=True
    )
    assert everything["total"] == 4  # three threads... plus the draft's own
    assert everything["canCalculateChanges"] is True


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ({"hasKeyword": "$flagged"}, {"Grüße aus Köln 📷"}),
        ({"hasAttachment": True}, {"Grüße aus Köln 📷"}),
        ({"from": "ada"}, {"Lunch on Friday?", "Re: Lunch on Friday?"}),
        ({"subject": "JMAP"}, {"This week: JMAP arrives next to your Dovecot"}),
        ({"someInThreadHaveKeyword": "$seen", "notKeyword": "$seen"}, {"Re: Lunch on Friday?"}),
        ({"allInThreadHaveKeyword": "$seen"}, {"Notes for Friday"}),
        (
            {"noneInThreadHaveKeyword": "$seen"},
            {"Grüße aus Köln 📷", "This week: JMAP arrives next to your Dovecot"},
        ),
        (
            {
                "operator": "NOT",
                "conditions": [{"hasKeyword": "$seen"}, {"hasKeyword": "$flagged"}],
            },
            {"Re: Lunch on Friday?", "This week: JMAP arrives next to your Dovecot"},
        ),
        (
            {"operator": "OR", "conditions": [{"subject": "notes"}, {"subject": "grüße"}]},
            {"Notes for Friday", "Grüße aus Köln 📷"},
        ),
        (
            {"minSize": 800, "maxSize": 900},
            {"Grüße aus Köln 📷", "This week: JMAP arrives next to your Dovecot"},
        ),
    ],
)
async def test_filters_rfc8621_4_4_1(
    jmap: Jmap, filter_: dict[str, Any], expected: set[str]
) -> None:
    assert set(await query(jmap, filter=filter_)) == expected


async def test_dates_and_mailbox_exclusion_rfc8621_4_4_1(jmap: Jmap) -> None:
    boxes = await jmap.mailboxes()
    emails = (await jmap.call("Email/get", ids=None, properties=["receivedAt", "subject"]))["list"]
    news = next(e for e in emails if e["subject"].startswith("This week"))
    # The demo's draft is the only message newer than the newsletter.
    assert set(await query(jmap, filter={"after": news["receivedAt"]})) == {
        news["subject"],
        "Notes for Friday",
    }
    assert news["subject"] not in await query(jmap, filter={"before": news["receivedAt"]})
    others = await query(jmap, filter={"inMailboxOtherThan": [boxes["Inbox"]["id"]]})
    assert set(others) == {"Re: Lunch on Friday?", "Notes for Friday"}


async def test_sorts_rfc8621_4_4_2(jmap: Jmap) -> None:
    by_subject = await query(jmap, sort=[{"property": "subject"}, *NEWEST_FIRST])
    lunch = [s for s in by_subject if "Lunch" in s]
    assert by_subject.index(lunch[0]) + 2 == by_subject.index(lunch[-1])  # "Re:" ignored
    by_size = (
        await jmap.call(
            "Email/get",
            ids=(await jmap.call("Email/query", sort=[{"property": "size"}]))["ids"],
            properties=["size"],
        )
    )["list"]
    assert [e["size"] for e in by_size] == sorted(e["size"] for e in by_size)
    flagged_first = await query(
        jmap, sort=[{"property": "hasKeyword", "keyword": "$flagged", "isAscending": False}]
    )
    assert flagged_first[0] == "Grüße aus Köln 📷"
    by_from = await query(
        jmap, sort=[{"property": "from", "collation": "i;unicode-casemap"}, *NEWEST_FIRST]
    )
    assert by_from[0].startswith(("Re: Lunch", "Lunch"))  # Ada sorts first


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"filter": {"text": 5}}, "invalidArguments"),
        ({"filter": {"header": []}}, "invalidArguments"),
        ({"filter": {"header": ["a", "b", "c"]}}, "invalidArguments"),
        ({"filter": {"colour": "red"}}, "unsupportedFilter"),
        ({"filter": {"inMailbox": 5}}, "invalidArguments"),
        ({"filter": {"before": "yesterday"}}, "invalidArguments"),
        ({"filter": {"hasKeyword": "bad keyword"}}, "invalidArguments"),
        ({"sort": [{"property": "hasKeyword"}]}, "invalidArguments"),
        ({"sort": [{"property": "preview"}]}, "unsupportedSort"),
        ({"collapseThreads": "yes"}, "invalidArguments"),
        ({"anchor": "Mnope"}, "anchorNotFound"),
    ],
)
async def test_query_errors_rfc8621_4_4(jmap: Jmap, args: dict[str, Any], error: str) -> None:
    assert (await jmap.error("Email/query", **args))["type"] == error


async def test_query_changes_with_collapsed_threads_rfc8621_4_5(jmap: Jmap, maildir: Path) -> None:
    inbox = (await jmap.mailboxes())["Inbox"]["id"]
    q = {"filter": {"inMailbox": inbox}, "sort": NEWEST_FIRST, "collapseThreads": True}
    before = await jmap.call("Email/query", **q)
    first = (await jmap.call("Email/get", ids=None, properties=["messageId", "subject"]))["list"]
    lunch_id = next(e["messageId"][0] for e in first if e["subject"] == "Lunch on Friday?")
    deliver(
        maildir,
        f"Subject: Re: Lunch on Friday?\nIn-Reply-To: <{lunch_id}>\nReferences: <{lunch_id}>\n\nSee you!\n".encode(),
        flags="",
        seen=False,
    )
    jmap.account.rescan()
    after = await jmap.call("Email/query", **q)
    delta = await jmap.call(
        "Email/queryChanges", sinceQueryState=before["queryState"], calculateTotal=True, **q
    )
    ids = [i for i in before["ids"] if i not in delta["removed"]]
    for item in delta["added"]:
        ids.insert(item["index"], item["id"])
    assert ids[: delta["total"]] == after["ids"]
    assert len(after["ids"]) == len(before["ids"])  # the reply replaced its thread's entry


def test_base_subject_rfc5256_2_1() -> None:
    assert base_subject("Re: Fwd: [list] RE:  hello  world (fwd)") == "hello world"
    assert base_subject("AW: Grüße") == "Grüße"
    assert base_subject("plain") == "plain"


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ({"text": "köln"}, {"Grüße aus Köln 📷"}),
        ({"text": "KOLN"}, {"Grüße aus Köln 📷"}),  # case- and diacritic-insensitive
        ({"text": "jose"}, {"Grüße aus Köln 📷"}),  # the From header
        ({"body": "booked table"}, {"Re: Lunch on Friday?"}),
        ({"body": "Lunch"}, set()),  # only in subjects, not bodies
        ({"body": "IMAP"}, {"This week: JMAP arrives next to your Dovecot"}),  # from HTML too
        ({"cc": "anyone"}, set()),
        ({"header": ["In-Reply-To"]}, {"Re: Lunch on Friday?"}),
        ({"header": ["subject", "GRÜSSE"]}, {"Grüße aus Köln 📷"}),  # ß casefolds to ss
        ({"header": ["Subject", "grüße"]}, {"Grüße aus Köln 📷"}),
        (
            {"text": "   "},
            {
                "Lunch on Friday?",
                "Re: Lunch on Friday?",
                "Grüße aus Köln 📷",
                "This week: JMAP arrives next to your Dovecot",
                "Notes for Friday",
            },
        ),
    ],
)
async def test_full_text_filters_rfc8621_4_4_1(
    jmap: Jmap, filter_: dict[str, Any], expected: set[str]
) -> None:
    assert set(await query(jmap, filter=filter_)) == expected


async def test_search_index_follows_changes_and_rebuilds(jmap: Jmap, maildir: Path) -> None:
    deliver(maildir, b"Subject: quarterly numbers\n\nThe zeppelin report is attached.\n", flags="S")
    jmap.account.rescan()
    assert await query(jmap, filter={"text": "zeppelin"}) == ["quarterly numbers"]
    jmap.account.search.close()  # deleting the index must only cost a rebuild
    del jmap.account.caches["search"]
    (jmap.account.state_dir / "search.sqlite").unlink()
    assert await query(jmap, filter={"text": "zeppelin"}) == ["quarterly numbers"]
