"""jmapc (PyPI), a third-party Python JMAP client, against the real server over
TLS. Every step is what a jmapc user writes; the assertions check what the
server did (on disk, at the SMTP sink), not only what it answered."""

from __future__ import annotations

import email
import email.policy
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jmapc
import pytest
from jmapc import Comparator, EmailQueryFilterCondition, MailboxQueryFilterCondition, Ref
from jmapc.methods import (
    CustomMethod,
    EmailChanges,
    EmailGet,
    EmailQuery,
    EmailSet,
    EmailSubmissionSet,
    IdentityGet,
    MailboxChanges,
    MailboxGet,
    MailboxQuery,
    SearchSnippetGet,
    ThreadGet,
)

from tests.interop.conftest import ADDRESS, PASSWORD, USER, Deployment
from tests.interop.messages import ATTACHMENT, MESSAGE

# What the JMAP demo webmail asks for: no subParts (RFC 8621 §4.1.4 says the
# structure comes whole anyway).
WEBMAIL_BODY_PROPERTIES = [
    "partId", "blobId", "size", "name", "type", "charset", "disposition", "cid", "location",
]  # fmt: skip


@pytest.fixture
def client(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[jmapc.Client]:
    # requests (under jmapc and its sseclient) trusts the test certificate this way.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(deployment.ca))
    client = jmapc.Client.create_with_password(deployment.host, USER, PASSWORD)
    yield client
    client.requests_session.close()  # keep-alive connections would hold up shutdown


def roles(client: jmapc.Client) -> dict[str, str]:
    boxes = client.request(MailboxGet(ids=None), raise_errors=True, single_response=True)
    return {box.role: box.id for box in boxes.data if box.role}


def walk(part: Any) -> Iterator[Any]:
    yield part
    for child in part.sub_parts or []:
        yield from walk(child)


def test_session_and_mailboxes(client: jmapc.Client) -> None:
    assert client.account_id
    urns = client.jmap_session.capabilities.urns
    assert {"urn:ietf:params:jmap:mail", "urn:ietf:params:jmap:submission"} <= urns
    found = roles(client)
    assert {"inbox", "sent", "drafts", "trash", "archive"} <= set(found)
    # jmapc puts anchorOffset, calculateTotal and position into every Comparator.
    result = client.request(
        MailboxQuery(
            filter=MailboxQueryFilterCondition(role="inbox"), sort=[Comparator(property="name")]
        ),
        raise_errors=True,
        single_response=True,
    )
    assert result.ids == [found["inbox"]]


def test_query_and_get_by_back_reference(client: jmapc.Client) -> None:
    inbox = roles(client)["inbox"]
    query, get, threads = client.request(
        [
            EmailQuery(
                filter=EmailQueryFilterCondition(in_mailbox=inbox),
                sort=[Comparator(property="receivedAt", is_ascending=False)],
                collapse_threads=True,
                limit=30,
                calculate_total=True,
            ),
            EmailGet(
                ids=Ref("/ids"),
                properties=["threadId", "subject", "from", "receivedAt", "bodyStructure"],
                body_properties=WEBMAIL_BODY_PROPERTIES,
            ),
            ThreadGet(ids=Ref("/list/*/threadId")),
        ],
        raise_errors=True,
    )
    ids = query.response.ids
    assert len(ids) == 30
    assert query.response.total > 30
    emails = get.response.data
    assert [e.id for e in emails] == ids
    dates = [e.received_at for e in emails]
    assert dates == sorted(dates, reverse=True)
    assert all(e.subject and e.mail_from for e in emails)
    assert any(not e.subject.isascii() for e in emails)  # the non-ASCII subjects decode
    multipart = [e for e in emails if e.body_structure.type.startswith("multipart/")]
    assert multipart
    for e in multipart:  # the whole tree, though subParts was not asked for
        leaves = [p for p in walk(e.body_structure) if not p.type.startswith("multipart/")]
        assert leaves
        assert all(p.part_id and p.blob_id for p in leaves)
    members = {t.id: t.email_ids for t in threads.response.data}
    assert all(e.id in members[e.thread_id] for e in emails)


def import_method(client: jmapc.Client, blob_id: str, mailbox: str) -> CustomMethod:
    """jmapc has no Email/import class; its documented way is a CustomMethod."""
    method = CustomMethod(
        data={
            "accountId": client.account_id,
            "emails": {"imp": {"blobId": blob_id, "mailboxIds": {mailbox: True}}},
        }
    )
    method.jmap_method = "Email/import"
    method.using = {"urn:ietf:params:jmap:mail"}
    return method


def test_upload_import_and_download_are_byte_identical(
    client: jmapc.Client, deployment: Deployment, tmp_path: Path
) -> None:
    source = tmp_path / "message.eml"
    source.write_bytes(MESSAGE)
    blob = client.upload_blob(source)
    assert blob.size == len(MESSAGE)
    inbox = roles(client)["inbox"]
    imported = client.request(
        import_method(client, blob.id, inbox), raise_errors=True, single_response=True
    )
    email_id = imported.data["created"]["imp"]["id"]
    (got,) = client.request(
        EmailGet(ids=[email_id], properties=["blobId", "subject", "attachments", "from"]),
        raise_errors=True,
        single_response=True,
    ).data
    assert got.subject == "Grüße, Übersicht und ein Foto"
    assert got.mail_from[0].name == "Zoë Ødegård"
    (attachment,) = got.attachments
    assert attachment.name == "Übersicht 2026.pdf"
    target = tmp_path / "attachment.bin"
    client.download_attachment(attachment, target)
    assert target.read_bytes() == ATTACHMENT
    # The whole message comes back exactly as uploaded, and sits in the Maildir
    # with LF line ends, as Dovecot keeps it (MAILDIR.md).
    whole = client.requests_session.get(
        client.jmap_session.download_url.format(
            accountId=client.account_id, blobId=got.blob_id, name="m.eml", type="message/rfc822"
        ),
        timeout=30,
    )
    assert whole.content == MESSAGE
    assert whole.headers["content-type"] == "message/rfc822"
    on_disk = [p.read_bytes() for p in (deployment.maildir / "cur").iterdir()]
    on_disk += [p.read_bytes() for p in (deployment.maildir / "new").iterdir()]
    assert MESSAGE.replace(b"\r\n", b"\n") in on_disk


def test_keywords_moves_and_changes(client: jmapc.Client, deployment: Deployment) -> None:
    boxes = roles(client)
    query = client.request(
        EmailQuery(filter=EmailQueryFilterCondition(in_mailbox=boxes["inbox"]), limit=3),
        raise_errors=True,
        single_response=True,
    )
    before = client.request(EmailGet(ids=[]), raise_errors=True, single_response=True).state
    boxes_before = client.request(MailboxGet(ids=[]), raise_errors=True, single_response=True)
    first, second, third = query.ids
    result = client.request(
        EmailSet(
            update={
                first: {"keywords/$flagged": True},
                second: {"mailboxIds": {boxes["archive"]: True}},
                third: {"keywords/$seen": None, f"mailboxIds/{boxes['trash']}": True},
            }
        ),
        raise_errors=True,
        single_response=True,
    )
    assert set(result.updated) == {first, second, third}
    changes = client.request(
        EmailChanges(since_state=before), raise_errors=True, single_response=True
    )
    assert set(changes.updated) == {first, second, third}
    assert changes.created == []
    assert changes.destroyed == []
    box_changes = client.request(
        MailboxChanges(since_state=boxes_before.state), raise_errors=True, single_response=True
    )
    assert {boxes["inbox"], boxes["archive"]} <= set(box_changes.updated)
    (moved,) = client.request(
        EmailGet(ids=[second], properties=["mailboxIds"]), raise_errors=True, single_response=True
    ).data
    assert moved.mailbox_ids == {boxes["archive"]: True}
    # What Dovecot will see: the flag is a letter in the file name.
    flagged = [p.name for p in (deployment.maildir / "cur").iterdir() if "F" in p.name[-6:]]
    assert flagged


def test_draft_and_submission_reach_the_smtp_server(
    client: jmapc.Client, deployment: Deployment
) -> None:
    boxes = roles(client)
    identity = client.request(IdentityGet(ids=None), raise_errors=True, single_response=True)
    (me,) = [i for i in identity.data if i.email == ADDRESS]
    draft = jmapc.Email(
        mailbox_ids={boxes["drafts"]: True},
        keywords={"$draft": True},
        mail_from=[jmapc.EmailAddress(name="Alice", email=ADDRESS)],
        to=[jmapc.EmailAddress(name="Bob Müller", email="bob@example.net")],
        subject="Treffen am Freitag",
        body_values={"body": jmapc.EmailBodyValue(value="Bis dann, café um zwölf.")},
        text_body=[jmapc.EmailBodyPart(part_id="body", type="text/plain")],
    )
    # The third response is the implicit Email/set of onSuccessUpdateEmail (§7.5).
    created, submitted, implicit = client.request(
        [
            EmailSet(create={"draft": draft}),
            EmailSubmissionSet(
                create={"send": jmapc.EmailSubmission(email_id="#draft", identity_id=me.id)},
                on_success_update_email={
                    "#send": {
                        f"mailboxIds/{boxes['drafts']}": None,
                        f"mailboxIds/{boxes['sent']}": True,
                        "keywords/$draft": None,
                    }
                },
            ),
        ],
        raise_errors=True,
    )
    email_id = created.response.created["draft"].id
    assert submitted.response.created["send"].id
    assert implicit.response.updated == {email_id: None}
    (message,) = deployment.smtp.handler.wait(1)
    assert message.rcpt_tos == ["bob@example.net"]
    parsed = email.message_from_bytes(message.data, policy=email.policy.default)
    assert parsed["Subject"] == "Treffen am Freitag"
    assert "zwölf" in parsed.get_content()
    (sent,) = client.request(
        EmailGet(ids=[email_id], properties=["mailboxIds", "keywords"]),
        raise_errors=True,
        single_response=True,
    ).data
    assert sent.mailbox_ids == {boxes["sent"]: True}
    assert "$draft" not in (sent.keywords or {})


def test_search_and_snippets(client: jmapc.Client) -> None:
    condition = EmailQueryFilterCondition(text="budget")
    query, snippets = client.request(
        [
            EmailQuery(filter=condition, limit=10),
            SearchSnippetGet(ids=Ref("/ids"), filter=condition),
        ],
        raise_errors=True,
    )
    assert query.response.ids
    found = snippets.response.data
    assert [s.email_id for s in found] == query.response.ids
    marked = [s for s in found if "<mark>" in (s.preview or "") + (s.subject or "")]
    assert marked
    assert all("budget" in (s.preview or "").lower() for s in marked if s.preview)


def test_event_source_push(client: jmapc.Client) -> None:
    inbox = roles(client)["inbox"]
    (first,) = client.request(
        EmailQuery(filter=EmailQueryFilterCondition(in_mailbox=inbox), limit=1),
        raise_errors=True,
        single_response=True,
    ).ids
    events: list[Any] = []
    done = threading.Event()
    listener = jmapc.Client.create_with_password(
        client._host,
        USER,
        PASSWORD,
        event_source_config=jmapc.EventSourceConfig(closeafter="state", ping=0),
    )

    def listen() -> None:
        for event in listener.events:
            events.append(event)
            if any(t.email for t in event.data.changed.values()):
                done.set()
                return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    # The stream may not be open yet when the first change lands: change until a
    # push names a state one of our changes produced.
    states = []
    for turn in range(20):
        result = client.request(
            EmailSet(update={first: {"keywords/$flagged": True if turn % 2 == 0 else None}}),
            raise_errors=True,
            single_response=True,
        )
        states.append(result.new_state)
        if done.wait(0.5):
            break
    assert done.is_set(), events
    thread.join(5)
    if listener._events is not None:
        listener._events.resp.close()
    listener.requests_session.close()
    pushed = [t.email for e in events for t in e.data.changed.values() if t.email]
    assert set(pushed) & set(states)
