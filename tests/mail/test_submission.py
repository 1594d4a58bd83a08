"""Identity and EmailSubmission (RFC 8621 §6, §7) through a real uvicorn, sending
to a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from maildir_jmap.config import Config
from maildir_jmap.core.capabilities import CORE, MAIL, SUBMISSION
from maildir_jmap.delivery.scheduler import SendingSettings
from maildir_jmap.delivery.smtp import Smarthost
from maildir_jmap.http.app import create_app
from maildir_jmap.users import UserDirectory
from tests.conftest import PASSWORDS, LiveServer
from tests.smtp import SmtpServer

AUTH = ("alice", PASSWORDS["alice"])
ADDRESSES = ("alice@example.org", "*@team.example.org")


class Client:
    def __init__(self, server: LiveServer) -> None:
        self.url = server.url
        session = httpx.get(self.url + "/jmap/session", auth=AUTH).json()
        self.session = session
        self.account = session["primaryAccounts"][SUBMISSION]

    def request(
        self, calls: list[Any], using: tuple[str, ...] = (CORE, MAIL, SUBMISSION)
    ) -> list[Any]:
        body = {"using": list(using), "methodCalls": calls}
        response = httpx.post(self.url + "/jmap/api/", json=body, auth=AUTH, timeout=30)
        assert response.status_code == 200, response.text
        return list(response.json()["methodResponses"])

    def call(self, name: str, args: dict[str, Any], **kw: Any) -> dict[str, Any]:
        ((got, result, _), *_) = self.request(
            [[name, {"accountId": self.account, **args}, "0"]], **kw
        )
        assert got == name, result
        return dict(result)

    def mailbox(self, role: str) -> str:
        boxes = self.call("Mailbox/get", {"ids": None})["list"]
        return next(b["id"] for b in boxes if b["role"] == role)

    def identity(self) -> dict[str, Any]:
        return dict(self.call("Identity/get", {"ids": None})["list"][0])

    def draft(self, **fields: Any) -> str:
        email = {
            "mailboxIds": {self.mailbox("drafts"): True},
            "keywords": {"$draft": True},
            "from": [{"name": "Alice", "email": "alice@example.org"}],
            "subject": "Lunch",
            "bodyValues": {"1": {"value": "Noon at the usual place?"}},
            "textBody": [{"partId": "1", "type": "text/plain"}],
            **fields,
        }
        email = {k: v for k, v in email.items() if v is not None}  # None: leave it out
        result = self.call("Email/set", {"create": {"d": email}})
        assert "d" in (result["created"] or {}), result
        return str(result["created"]["d"]["id"])

    def submit(self, obj: dict[str, Any], **args: Any) -> dict[str, Any]:
        return self.call("EmailSubmission/set", {"create": {"s": obj}, **args})


def to(*addresses: str) -> list[dict[str, str]]:
    return [{"email": a} for a in addresses]


@pytest.fixture
def sending_users(users: UserDirectory) -> UserDirectory:
    alice = users.get("alice")
    assert alice is not None
    return UserDirectory({"alice": replace(alice, addresses=ADDRESSES)})


def config_for(tmp_path: Path, smtp: SmtpServer, **sending: Any) -> Config:
    settings = SendingSettings(smarthost=Smarthost(port=smtp.port, timeout=5), **sending)
    return Config(state_dir=tmp_path / "state", watch=False, sending=settings)


@pytest.fixture
def client(
    tmp_path: Path, sending_users: UserDirectory, smtp_server: SmtpServer
) -> Iterator[Client]:
    config = config_for(tmp_path, smtp_server, retry_base=0.2, max_attempts=3, max_recipients=5)
    with LiveServer(create_app(config, sending_users)) as server:
        yield Client(server)


def test_session_advertises_submission_rfc8621_1_3_2(client: Client) -> None:
    capability = client.session["accounts"][client.account]["accountCapabilities"][SUBMISSION]
    assert capability["maxDelayedSend"] == 7 * 24 * 3600
    assert capability["submissionExtensions"]["FUTURERELEASE"] == [str(7 * 24 * 3600)]
    assert client.session["capabilities"][SUBMISSION] == {}


def test_send_strips_bcc_and_files_the_sent_copy_rfc8621_7_5(
    client: Client, smtp_server: SmtpServer
) -> None:
    identity = client.identity()
    assert (identity["email"], identity["mayDelete"]) == ("alice@example.org", False)
    email_id = client.draft(
        to=to("bob@example.net"),
        cc=to("carol@example.net", "bob@example.net"),
        bcc=to("dave@example.net"),
    )
    drafts, sent = client.mailbox("drafts"), client.mailbox("sent")
    on_success = {
        "#s": {f"mailboxIds/{drafts}": None, f"mailboxIds/{sent}": True, "keywords/$draft": None}
    }
    # Common clients name only core and submission here (issue: implicit Email/set still runs).
    body = [
        [
            "EmailSubmission/set",
            {
                "accountId": client.account,
                "create": {"s": {"identityId": identity["id"], "emailId": email_id}},
                "onSuccessUpdateEmail": on_success,
            },
            "0",
        ]
    ]
    (sub_name, result, _), (email_name, email_result, call_id) = client.request(
        body, using=(CORE, SUBMISSION)
    )
    assert (sub_name, email_name, call_id) == ("EmailSubmission/set", "Email/set", "0")
    created = result["created"]["s"]
    assert created["undoStatus"] == "final"
    # §7: the envelope derived from From and the deduplicated To, Cc and Bcc.
    assert created["envelope"] == {
        "mailFrom": {"email": "alice@example.org", "parameters": None},
        "rcptTo": [
            {"email": r, "parameters": None}
            for r in ("bob@example.net", "carol@example.net", "dave@example.net")
        ],
    }
    assert created["deliveryStatus"]["dave@example.net"] == {
        "smtpReply": "250 2.1.5 recipient OK",
        "delivered": "unknown",
        "displayed": "unknown",
    }
    assert email_result["updated"] == {email_id: None}
    (received,) = smtp_server.handler.wait(1)
    assert received.mail_from == "alice@example.org"
    assert received.rcpt_tos == ["bob@example.net", "carol@example.net", "dave@example.net"]
    assert b"\nbcc:" not in received.data.lower()
    assert b"dave@" not in received.data
    assert b"Subject: Lunch" in received.data
    email = client.call("Email/get", {"ids": [email_id], "properties": ["mailboxIds", "keywords"]})
    assert email["list"][0]["mailboxIds"] == {sent: True}
    assert email["list"][0]["keywords"] == {}
    got = client.call("EmailSubmission/get", {"ids": [created["id"]]})["list"][0]
    assert (got["emailId"], got["identityId"]) == (email_id, identity["id"])


@pytest.mark.parametrize(
    ("fields", "envelope", "error"),
    [
        ({"from": to("mallory@evil.example"), "to": to("b@example.net")}, None, "forbiddenFrom"),
        ({"from": None, "to": to("b@example.net")}, None, "invalidEmail"),
        ({"to": None}, None, "noRecipients"),
        ({"to": to(*(f"r{i}@example.net" for i in range(6)))}, None, "tooManyRecipients"),
        ({"to": to("reject-b@example.net")}, None, "invalidRecipients"),
        (
            {},
            {"mailFrom": {"email": "x@evil.example"}, "rcptTo": to("b@example.net")},
            "forbiddenMailFrom",
        ),
        (
            {},
            {"mailFrom": {"email": "refused-a@team.example.org"}, "rcptTo": to("b@example.net")},
            "forbiddenMailFrom",
        ),
        (
            {},
            {"mailFrom": {"email": "alice@example.org"}, "rcptTo": to("not an address")},
            "invalidRecipients",
        ),
        (
            {},
            {
                "mailFrom": {"email": "alice@example.org", "parameters": {"NOTIFY": "NEVER"}},
                "rcptTo": to("b@example.net"),
            },
            "invalidProperties",
        ),
        (
            {},
            {
                "mailFrom": {"email": "alice@example.org", "parameters": {"HOLDFOR": "99999999"}},
                "rcptTo": to("b@example.net"),
            },
            "invalidProperties",
        ),
    ],
)
def test_refusals_send_nothing_rfc8621_7_5(
    client: Client, smtp_server: SmtpServer, fields: dict[str, Any], envelope: Any, error: str
) -> None:
    email_id = client.draft(**({"to": to("b@example.net")} | fields))
    obj = {"identityId": client.identity()["id"], "emailId": email_id, "envelope": envelope}
    result = client.submit(obj)
    assert result["notCreated"]["s"]["type"] == error, result
    if error == "tooManyRecipients":
        assert result["notCreated"]["s"]["maxRecipients"] == 5
    if error == "invalidRecipients":
        assert result["notCreated"]["s"]["invalidRecipients"]
    assert smtp_server.handler.messages == []
    assert client.call("EmailSubmission/get", {"ids": None})["list"] == []


def test_unknown_identity_or_email_are_invalid_properties_rfc8621_7_5(client: Client) -> None:
    email_id = client.draft(to=to("b@example.net"))
    identity = client.identity()["id"]
    bad_identity = client.submit({"identityId": "Inope", "emailId": email_id})
    assert bad_identity["notCreated"]["s"]["properties"] == ["identityId"]
    bad_email = client.submit({"identityId": identity, "emailId": "Mnope"})
    assert bad_email["notCreated"]["s"]["properties"] == ["emailId"]
    server_set = client.submit({"identityId": identity, "emailId": email_id, "undoStatus": "final"})
    assert server_set["notCreated"]["s"]["properties"] == ["undoStatus"]


def test_too_large_reports_max_size_rfc8621_7_5(
    tmp_path: Path, sending_users: UserDirectory, smtp_server: SmtpServer
) -> None:
    config = config_for(tmp_path, smtp_server, max_size=1000)
    with LiveServer(create_app(config, sending_users)) as server:
        client = Client(server)
        email_id = client.draft(to=to("b@example.net"), bodyValues={"1": {"value": "x" * 2000}})
        result = client.submit({"identityId": client.identity()["id"], "emailId": email_id})
        assert result["notCreated"]["s"]["type"] == "tooLarge"
        assert result["notCreated"]["s"]["maxSize"] == 1000
    assert smtp_server.handler.messages == []


def wait_for(client: Client, sub_id: str, check: Any, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        got = client.call("EmailSubmission/get", {"ids": [sub_id]})["list"][0]
        if check(got) or time.monotonic() > deadline:
            return dict(got)
        time.sleep(0.1)


def test_temporary_failures_are_retried_then_given_up(
    client: Client, smtp_server: SmtpServer
) -> None:
    smtp_server.handler.later_once.add("grey@example.net")
    email_id = client.draft(to=to("ok@example.net", "grey@example.net", "later-x@example.net"))
    before = client.call("EmailSubmission/get", {"ids": []})["state"]
    created = client.submit({"identityId": client.identity()["id"], "emailId": email_id})[
        "created"
    ]["s"]
    status = created["deliveryStatus"]
    assert created["undoStatus"] == "final"  # relayed to ok@: no longer cancelable
    assert status["ok@example.net"]["delivered"] == "unknown"
    assert status["grey@example.net"] == {
        "smtpReply": "451 4.7.1 greylisted, come back soon",
        "delivered": "queued",
        "displayed": "unknown",
    }
    done = wait_for(
        client,
        created["id"],
        lambda s: s["deliveryStatus"]["later-x@example.net"]["delivered"] == "no",
    )
    assert done["deliveryStatus"]["grey@example.net"]["delivered"] == "unknown"
    assert done["deliveryStatus"]["later-x@example.net"]["smtpReply"] == "451 4.3.0 try again later"
    messages = smtp_server.handler.messages
    assert [m.rcpt_tos for m in messages] == [["ok@example.net"], ["grey@example.net"]]
    changes = client.call("EmailSubmission/changes", {"sinceState": before})
    assert changes["created"] == [created["id"]]


def test_delayed_send_can_be_canceled_rfc8621_7(client: Client, smtp_server: SmtpServer) -> None:
    email_id = client.draft(to=to("b@example.net"))
    envelope = {
        "mailFrom": {"email": "alice@example.org", "parameters": {"HOLDFOR": "60"}},
        "rcptTo": to("b@example.net"),
    }
    started = time.time()
    created = client.submit(
        {"identityId": client.identity()["id"], "emailId": email_id, "envelope": envelope}
    )["created"]["s"]
    assert created["undoStatus"] == "pending"
    send_at = time.mktime(time.strptime(created["sendAt"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert 58 <= send_at - started <= 62  # §7 sendAt: when the hold ends
    pending = client.call("EmailSubmission/query", {"filter": {"undoStatus": "pending"}})
    assert pending["ids"] == [created["id"]]
    result = client.call(
        "EmailSubmission/set", {"update": {created["id"]: {"undoStatus": "canceled"}}}
    )
    assert result["updated"] == {created["id"]: None}
    got = client.call("EmailSubmission/get", {"ids": [created["id"]]})["list"][0]
    assert got["undoStatus"] == "canceled"
    assert got["deliveryStatus"]["b@example.net"]["delivered"] == "no"
    back = client.call(
        "EmailSubmission/set", {"update": {created["id"]: {"undoStatus": "pending"}}}
    )
    assert back["notUpdated"][created["id"]]["properties"] == ["undoStatus"]
    assert smtp_server.handler.messages == []


def test_sent_submission_cannot_be_unsent_rfc8621_7_5(client: Client) -> None:
    email_id = client.draft(to=to("b@example.net"))
    created = client.submit({"identityId": client.identity()["id"], "emailId": email_id})[
        "created"
    ]["s"]
    result = client.call(
        "EmailSubmission/set", {"update": {created["id"]: {"undoStatus": "canceled"}}}
    )
    assert result["notUpdated"][created["id"]]["type"] == "cannotUnsend"
    immutable = client.call("EmailSubmission/set", {"update": {created["id"]: {"emailId": "Mx"}}})
    assert immutable["notUpdated"][created["id"]]["type"] == "invalidProperties"
    # §7.5: destroying the record is allowed and does not unsend anything.
    gone = client.call(
        "EmailSubmission/set",
        {"destroy": [created["id"]], "onSuccessDestroyEmail": [created["id"]]},
        using=(CORE, MAIL, SUBMISSION),
    )
    assert gone["destroyed"] == [created["id"]]
    assert client.call("Email/get", {"ids": [email_id]})["notFound"] == [email_id]


def test_delayed_send_goes_out_after_a_restart(
    tmp_path: Path, sending_users: UserDirectory, smtp_server: SmtpServer
) -> None:
    config = config_for(tmp_path, smtp_server)
    with LiveServer(create_app(config, sending_users)) as server:
        client = Client(server)
        email_id = client.draft(to=to("b@example.net"))
        envelope = {
            "mailFrom": {"email": "alice@example.org", "parameters": {"HOLDFOR": "2"}},
            "rcptTo": to("b@example.net"),
        }
        created = client.submit(
            {"identityId": client.identity()["id"], "emailId": email_id, "envelope": envelope}
        )["created"]["s"]
        assert created["undoStatus"] == "pending"
    assert smtp_server.handler.messages == []
    # Nobody logs in after the restart: the outbox alone opens the account.
    with LiveServer(create_app(config, sending_users)) as server:
        (received,) = smtp_server.handler.wait(1)
        assert received.rcpt_tos == ["b@example.net"]
        client = Client(server)
        got = wait_for(client, created["id"], lambda s: s["undoStatus"] == "final")
        assert got["undoStatus"] == "final"
        assert not any((tmp_path / "state").rglob("outbox/*.job"))


def test_identities_within_the_configured_addresses_rfc8621_6(client: Client) -> None:
    default = client.identity()
    before = client.call("Identity/get", {"ids": []})["state"]
    result = client.call(
        "Identity/set",
        {
            "create": {
                "team": {"email": "support@team.example.org", "name": "Support"},
                "evil": {"email": "ceo@evil.example"},
            },
            "update": {default["id"]: {"name": "Alice A.", "textSignature": "-- \nAlice"}},
            "destroy": [default["id"]],
        },
    )
    team = result["created"]["team"]
    assert team["mayDelete"] is True
    assert result["notCreated"]["evil"]["type"] == "forbiddenFrom"
    assert result["updated"] == {default["id"]: None}
    assert result["notDestroyed"][default["id"]]["type"] == "forbidden"  # mayDelete false
    changes = client.call("Identity/changes", {"sinceState": before})
    assert (changes["created"], changes["updated"]) == ([team["id"]], [default["id"]])
    immutable = client.call(
        "Identity/set", {"update": {team["id"]: {"email": "x@team.example.org"}}}
    )
    assert immutable["notUpdated"][team["id"]]["properties"] == ["email"]
    bad = client.call(
        "Identity/set", {"create": {"x": {"email": "a@team.example.org", "bcc": "nope"}}}
    )
    assert bad["notCreated"]["x"]["properties"] == ["bcc"]
    # A name ends up in a From field: CR/LF (header injection) and other controls are
    # refused, and every bad property is listed (RFC 8620 §5.3).
    injected = client.call(
        "Identity/set",
        {
            "create": {
                "x": {
                    "email": "a@team.example.org",
                    "name": "Eve\r\nBcc: victim@example.net",
                    "replyTo": [{"name": "a\nb", "email": "r@example.org"}],
                }
            },
            "update": {team["id"]: {"name": "tab\there"}},
        },
    )
    assert sorted(injected["notCreated"]["x"]["properties"]) == ["name", "replyTo"]
    assert injected["notUpdated"][team["id"]]["properties"] == ["name"]
    names = [i["name"] for i in client.call("Identity/get", {"ids": None})["list"]]
    assert not any("\n" in n or "\t" in n for n in names)
    # Sending from the new identity's address works; its envelope uses it.
    email_id = client.draft(**{"from": to("support@team.example.org"), "to": to("b@example.net")})
    created = client.submit({"identityId": team["id"], "emailId": email_id})["created"]["s"]
    assert created["envelope"]["mailFrom"]["email"] == "support@team.example.org"


def test_submission_changes_reach_push_listeners_rfc8620_7_3(client: Client) -> None:
    import json
    import threading

    email_id = client.draft(to=to("b@example.net"))
    events: list[dict[str, Any]] = []
    ready = threading.Event()

    def listen() -> None:
        url = client.url + "/jmap/eventsource/?types=EmailSubmission&closeafter=state&ping=0"
        with httpx.stream("GET", url, auth=AUTH, timeout=10) as response:
            ready.set()
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    ready.wait(5)
    time.sleep(0.2)
    result = client.submit({"identityId": client.identity()["id"], "emailId": email_id})
    thread.join(10)
    (event,) = events
    assert event["changed"][client.account] == {"EmailSubmission": result["newState"]}


def test_relay_refusing_us_is_forbidden_to_send_rfc8621_7_5(
    client: Client, smtp_server: SmtpServer
) -> None:
    smtp_server.handler.closed = True
    email_id = client.draft(to=to("b@example.net"))
    result = client.submit({"identityId": client.identity()["id"], "emailId": email_id})
    error = result["notCreated"]["s"]
    assert error["type"] == "forbiddenToSend"
    assert "530 5.7.0" in error["description"]


def test_query_and_query_changes_rfc8621_7_3(client: Client) -> None:
    identity = client.identity()["id"]
    first = client.submit({"identityId": identity, "emailId": client.draft(to=to("b@example.net"))})
    query = client.call(
        "EmailSubmission/query", {"sort": [{"property": "sentAt", "isAscending": False}]}
    )
    second = client.submit(
        {"identityId": identity, "emailId": client.draft(to=to("c@example.net"))}
    )
    ids = [first["created"]["s"]["id"], second["created"]["s"]["id"]]
    now = client.call(
        "EmailSubmission/query",
        {"filter": {"undoStatus": "final"}, "sort": [{"property": "emailId"}]},
    )
    assert sorted(now["ids"]) == sorted(ids)
    changes = client.call(
        "EmailSubmission/queryChanges",
        {
            "sinceQueryState": query["queryState"],
            "sort": [{"property": "sentAt", "isAscending": False}],
        },
    )
    assert [a["id"] for a in changes["added"]] == [ids[1]]
    thread = client.call(
        "EmailSubmission/query", {"filter": {"threadIds": [second["created"]["s"]["threadId"]]}}
    )
    assert thread["ids"] == [ids[1]]
    bad = client.request(
        [["EmailSubmission/query", {"accountId": client.account, "filter": {"colour": "red"}}, "0"]]
    )
    assert bad[0][1]["type"] == "unsupportedFilter"


def test_bad_input_is_refused_and_sends_nothing(client: Client, smtp_server: SmtpServer) -> None:
    email_id = client.draft(to=to("b@example.net"))
    identity = client.identity()["id"]
    for args in (
        {"onSuccessUpdateEmail": "x"},
        {"onSuccessDestroyEmail": [5]},
        {"create": []},
        {"destroy": 5},  # once serverFail: the pre-read of emailIds iterated it
        {"destroy": [5]},
        {"update": ["x"]},
        {"update": 7},
    ):
        ((name, error, _),) = client.request(
            [["EmailSubmission/set", {"accountId": client.account, **args}, "0"]]
        )
        assert (name, error["type"]) == ("error", "invalidArguments"), args
    for obj, prop in [
        ({"identityId": 5, "emailId": email_id}, "identityId"),
        ({"identityId": identity, "emailId": ["x"]}, "emailId"),
        ({"identityId": identity, "emailId": email_id, "envelope": 5}, "envelope"),
        (
            {
                "identityId": identity,
                "emailId": email_id,
                "envelope": {"mailFrom": "a", "rcptTo": []},
            },
            "envelope",
        ),
        ({"identityId": identity, "emailId": "../../etc/passwd"}, "emailId"),
    ]:
        result = client.submit(obj)
        assert result["notCreated"]["s"]["properties"] == [prop], obj
    assert smtp_server.handler.messages == []
    assert client.call("EmailSubmission/get", {"ids": None})["list"] == []
