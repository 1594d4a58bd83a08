"""Email/copy (RFC 8621 §4.7) and Blob/copy (RFC 8620 §6.3) between two accounts
of one user, through the sans-IO core (the HTTP layer gives each user one account
today; a Context with two is what shared or secondary accounts will look like)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from maildir_jmap.core.capabilities import CORE, MAIL, CoreLimits
from maildir_jmap.core.dispatch import AccountAccess, Context, process
from maildir_jmap.core.request import request_from_json
from maildir_jmap.demo import create_demo_maildir
from maildir_jmap.server.registry import build_registry
from maildir_jmap.store.account import Account

REGISTRY = build_registry()


class Two:
    def __init__(self, tmp_path: Path) -> None:
        self.a = Account.open("a", create_demo_maildir(tmp_path / "A", "a"), tmp_path / "state")
        self.b = Account.open("b", create_demo_maildir(tmp_path / "B", "b"), tmp_path / "state")

    def run(self, calls: list[list[Any]]) -> list[list[Any]]:
        accounts = {
            acc.account_id: AccountAccess(acc.account_id, acc.username, {MAIL: {}}, backend=acc)
            for acc in (self.a, self.b)
        }
        limits = CoreLimits()
        ctx = Context("owner", accounts, limits, registry=REGISTRY)
        request = request_from_json(
            {"using": [CORE, MAIL], "methodCalls": calls}, limits, REGISTRY.capabilities()
        )
        responses: list[list[Any]] = process(request, ctx, REGISTRY)["methodResponses"]
        return responses

    def box(self, account: Account, name: str) -> str:
        return next(m.id for m in account.index.mailboxes.values() if m.levels[-1:] == (name,))

    def subject(self, account: Account, subject: str) -> str:
        return next(r.id for r in account.index.emails.values() if r.subject == subject)


@pytest.fixture
def two(tmp_path: Path) -> Two:
    return Two(tmp_path)


def test_email_copy_then_destroy_original_rfc8621_4_7(two: Two) -> None:
    a, b = two.a, two.b
    eid = two.subject(a, "Grüße aus Köln 📷")
    # The demo Maildirs have different dates, so this Email is not in B yet.
    assert eid not in b.index.emails
    archive = two.box(b, "Archive")
    received = a.index.emails[eid].received
    responses = two.run(
        [
            [
                "Email/copy",
                {
                    "fromAccountId": a.account_id,
                    "accountId": b.account_id,
                    "create": {"c": {"id": eid, "mailboxIds": {archive: True}}},
                    "onSuccessDestroyOriginal": True,
                },
                "0",
            ]
        ]
    )
    (copy_name, copy, _), (set_name, destroyed, _) = responses
    assert copy_name == "Email/copy"
    created = copy["created"]["c"]
    assert set(created) == {"id", "blobId", "threadId", "size"}
    rec = b.index.emails[created["id"]]
    assert rec.mailbox_ids == {archive}
    assert rec.keywords == {"$flagged"}  # the original's, when none are given
    assert rec.received == received
    assert set_name == "Email/set"
    assert destroyed["destroyed"] == [eid]
    assert eid not in a.index.emails


def test_email_copy_errors_rfc8620_5_4(two: Two) -> None:
    a, b = two.a, two.b
    eid = two.subject(a, "Lunch on Friday?")
    inbox = two.box(b, "Archive")
    ((_, result, _),) = two.run(
        [
            [
                "Email/copy",
                {
                    "fromAccountId": a.account_id,
                    "accountId": b.account_id,
                    "create": {
                        "gone": {"id": "Mnothere", "mailboxIds": {inbox: True}},
                        "subject": {"id": eid, "mailboxIds": {inbox: True}, "subject": "x"},
                        "nobox": {"id": eid},
                    },
                },
                "0",
            ]
        ]
    )
    errors = result["notCreated"]
    assert errors["gone"]["type"] == "notFound"
    assert errors["subject"]["properties"] == ["subject"]
    assert errors["nobox"]["properties"] == ["mailboxIds"]
    ((name, error, _),) = two.run(
        [["Email/copy", {"fromAccountId": a.account_id, "accountId": a.account_id}, "0"]]
    )
    assert (name, error["type"]) == ("error", "invalidArguments")


def test_blob_copy_rfc8620_6_3(two: Two) -> None:
    a, b = two.a, two.b
    rec = next(iter(a.index.emails.values()))
    part_blob = f"P{rec.id[1:]}_1"
    ((name, result, _),) = two.run(
        [
            [
                "Blob/copy",
                {
                    "fromAccountId": a.account_id,
                    "accountId": b.account_id,
                    "blobIds": ["G" + rec.digest, part_blob, "Gnope"],
                },
                "0",
            ]
        ]
    )
    assert name == "Blob/copy"
    assert result["copied"]["G" + rec.digest] == "G" + rec.digest
    copied_part = result["copied"][part_blob]
    assert b.blobs.path_of(copied_part) is not None
    assert result["notCopied"] == {"Gnope": {"type": "notFound", "description": None}}
    ((name, error, _),) = two.run(
        [["Blob/copy", {"fromAccountId": "Anope", "accountId": b.account_id, "blobIds": []}, "0"]]
    )
    assert error["type"] == "fromAccountNotFound"
