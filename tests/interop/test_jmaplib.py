"""jmaplib (PyPI, imported as ``jmap``), a third-party typed JMAP client, against
the real server over TLS: the same day of a client as the jmapc and jmap-jam
tests, in its own idiom (batches with back-references, patch helpers,
ChangeStream, EventSourceClient)."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jmap import CreationRef
from jmap.auth import BasicAuth
from jmap.client import JMAPClient
from jmap.core.patch import keyword_patch, mailbox_patch
from jmap.push import EventSourceClient, Ping
from jmap.sync import ChangeStream

from tests.interop.conftest import ADDRESS, PASSWORD, USER, Deployment
from tests.interop.messages import ATTACHMENT, MESSAGE


@pytest.fixture
def client(deployment: Deployment) -> Iterator[JMAPClient]:
    trust = ssl.create_default_context(cafile=str(deployment.ca))
    http = httpx.Client(verify=trust, follow_redirects=True, timeout=30)
    with JMAPClient.connect(
        deployment.url + "/.well-known/jmap", auth=BasicAuth(USER, PASSWORD), http=http
    ) as client:
        yield client
    http.close()


def roles(client: JMAPClient) -> dict[str, str]:
    with client.batch() as batch:
        boxes = batch.mail.mailbox.get(ids=None)
    return {m.role: m.id for m in boxes.result.items if m.role}


def test_session_mailboxes_and_list_view(client: JMAPClient) -> None:
    found = roles(client)
    assert {"inbox", "sent", "drafts", "trash", "archive"} <= set(found)
    with client.batch() as batch:
        query = batch.mail.email.query(
            filter={"inMailbox": found["inbox"]},
            sort=[{"property": "receivedAt", "isAscending": False}],
            collapseThreads=True,
            limit=20,
            calculate_total=True,
        )
        emails = batch.mail.email.get(
            ids=query.ref_ids(), properties=["threadId", "subject", "from", "bodyStructure"]
        )
    assert len(emails.result.items) == 20
    assert query.result.total > 20
    assert [e.id for e in emails.result.items] == list(query.result.ids)
    assert any(not (e.subject or "").isascii() for e in emails.result.items)


def test_upload_import_and_download_are_byte_identical(
    client: JMAPClient, deployment: Deployment
) -> None:
    uploaded = client.upload(MESSAGE, content_type="message/rfc822")
    inbox = roles(client)["inbox"]
    with client.batch() as batch:
        imported = batch.mail.email.import_(
            emails={"imp": {"blobId": uploaded.blob_id, "mailboxIds": {inbox: True}}}
        )
    assert not imported.result.creation_errors
    email_id = imported.result.created["imp"].id
    with client.batch() as batch:
        got = batch.mail.email.get(ids=[email_id], properties=["blobId", "subject", "attachments"])
    email = got.result.items[0]
    assert email.subject == "Grüße, Übersicht und ein Foto"
    (part,) = email.attachments or []
    assert part.name == "Übersicht 2026.pdf"
    data = client.download(part.blob_id or "", name=part.name or "x", content_type=part.type or "")
    assert data == ATTACHMENT
    whole = client.download(email.blob_id or "", name="m.eml", content_type="message/rfc822")
    assert whole == MESSAGE


def test_flags_moves_and_change_stream(client: JMAPClient) -> None:
    boxes = roles(client)
    stream = ChangeStream(client, "Email")
    with client.batch() as batch:
        query = batch.mail.email.query(filter={"inMailbox": boxes["inbox"]}, limit=2)
        state = batch.mail.email.get(ids=[])
    stream.seed(state.result.state)
    first, second = query.result.ids
    patch = keyword_patch(add=["$flagged"], remove=["$seen"])
    move = mailbox_patch(add=[boxes["archive"]], remove=[boxes["inbox"]])
    with client.batch() as batch:
        changed = batch.mail.email.set(update={first: patch, second: move})
    assert not changed.result.has_errors
    changes = stream.catch_up()
    assert set(changes.updated) == {first, second}
    with client.batch() as batch:
        got = batch.mail.email.get(ids=[first, second], properties=["keywords", "mailboxIds"])
    by_id = {e.id: e for e in got.result.items}
    assert "$flagged" in (by_id[first].keywords or {})
    assert by_id[second].mailbox_ids == {boxes["archive"]: True}


def test_draft_and_submission_reach_the_smtp_server(
    client: JMAPClient, deployment: Deployment
) -> None:
    boxes = roles(client)
    with client.batch() as batch:
        identities = batch.submission.identity.get(ids=None)
    (me,) = [i for i in identities.result.items if i.email == ADDRESS]
    with client.batch() as batch:
        batch.mail.email.set(
            create={
                "draft": {
                    "mailboxIds": {boxes["drafts"]: True},
                    "keywords": {"$draft": True},
                    "from": [{"email": me.email, "name": "Alice"}],
                    "to": [{"email": "carol@example.com"}],
                    "subject": "Typed and sent",
                    "textBody": [{"partId": "body", "type": "text/plain"}],
                    "bodyValues": {"body": {"value": "Sent by jmaplib."}},
                }
            }
        )
        sent = batch.submission.email_submission.set(
            create={"send": {"identityId": me.id, "emailId": CreationRef("draft")}},
            onSuccessUpdateEmail={"#send": {"keywords/$draft": None}},
        )
    assert not sent.result.has_errors, sent.result.creation_errors
    (message,) = deployment.smtp.handler.wait(1)
    assert message.rcpt_tos == ["carol@example.com"]
    assert b"Sent by jmaplib." in message.data


def test_search_snippets(client: JMAPClient) -> None:
    condition = {"text": "budget"}
    with client.batch() as batch:
        found = batch.mail.email.query(filter=condition, limit=10)
        snippets = batch.mail.search_snippet.get(filter=condition, email_ids=found.ref_ids())
    assert found.result.ids
    items: list[Any] = list(snippets.result.items)
    assert [s.email_id for s in items] == list(found.result.ids)
    assert any("<mark>" in (s.preview or "") + (s.subject or "") for s in items)


def test_event_source_push(client: JMAPClient) -> None:
    inbox = roles(client)["inbox"]
    with client.batch() as batch:
        query = batch.mail.email.query(filter={"inMailbox": inbox}, limit=1)
    (first,) = query.result.ids
    events: list[Any] = []
    done = threading.Event()
    source = EventSourceClient(client, types=("Email",), ping=0)
    stream = source.events()

    def listen() -> None:
        for event in stream:
            if isinstance(event, Ping):
                continue
            events.append(event)
            done.set()
            return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    for turn in range(20):
        patch = (
            keyword_patch(add=["$flagged"]) if turn % 2 == 0 else keyword_patch(remove=["$flagged"])
        )
        with client.batch() as batch:
            batch.mail.email.set(update={first: patch})
        if done.wait(0.5):
            break
    assert done.is_set()
    thread.join(5)
    stream.close()
    assert events
