"""Email/set create objects written as MIME (RFC 8621 §4.6), checked by parsing
the bytes back with mime/parse: what went in must come out."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maildir_jmap.mail.email_view import BodyOptions, content_json
from maildir_jmap.mime.compose import ComposeError, MissingBlobs, TooLarge, compose
from maildir_jmap.mime.parse import parse
from maildir_jmap.mime.views import DEFAULT_BODY_PROPERTIES

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
BLOBS = {"Gimage": PNG, "Gpdf": b"%PDF-1.4\n" + bytes(range(200)), "Gmsg": b""}
PROPS = frozenset(
    {"from", "to", "cc", "bcc", "replyTo", "sender", "subject", "sentAt", "messageId"}
    | {"inReplyTo", "references", "bodyStructure", "textBody", "htmlBody", "attachments"}
    | {"bodyValues", "headers"}
)


def build(obj: dict[str, Any], max_size: int = 10_000_000) -> bytes:
    return compose(obj, BLOBS.get, max_size=max_size, hostname="host.test")


def view(raw: bytes, props: frozenset[str] = PROPS) -> dict[str, Any]:
    root = parse(raw)
    out: dict[str, Any] = {}
    body = BodyOptions(frozenset({*DEFAULT_BODY_PROPERTIES, "subParts"}), every=True)
    content_json(out, root.headers, root, props, body, "Gx")
    return out


def text_of(out: dict[str, Any], part: dict[str, Any]) -> str:
    value: str = out["bodyValues"][part["partId"]]["value"]
    return value


def test_plain_text_round_trip_rfc8621_4_6() -> None:
    obj = {
        "from": [{"name": "Alice", "email": "alice@example.com"}],
        "to": [{"name": None, "email": "bob@example.com"}],
        "subject": "Lunch?",
        "textBody": [{"partId": "t", "type": "text/plain"}],
        "bodyValues": {"t": {"value": "Shall we?\nAt noon.\n"}},
    }
    out = view(build(obj))
    assert out["from"] == obj["from"]
    assert out["to"] == [{"name": None, "email": "bob@example.com"}]
    assert out["subject"] == "Lunch?"
    (text,) = out["textBody"]
    assert text["type"] == "text/plain"
    assert text["charset"] == "utf-8"
    assert text_of(out, text) == "Shall we?\nAt noon.\n"
    assert out["attachments"] == []


def test_date_and_message_id_added_when_absent_rfc8621_4_6() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    raw = compose(
        {"from": [{"name": None, "email": "a@mail.example"}]},
        BLOBS.get,
        max_size=10_000,
        now=moment,
    )
    out = view(raw)
    assert out["sentAt"] == "2026-01-02T03:04:05Z"
    (mid,) = out["messageId"]
    assert mid.endswith("@mail.example")
    assert b"MIME-Version: 1.0\r\n" in raw


def test_given_date_keeps_its_offset_and_ids_are_kept() -> None:
    out = view(
        build(
            {
                "sentAt": "2014-10-30T14:12:00+08:00",
                "messageId": ["abc@x.example"],
                "inReplyTo": ["p@x.example"],
                "references": ["r@x.example", "p@x.example"],
            }
        )
    )
    assert out["sentAt"] == "2014-10-30T14:12:00+08:00"
    assert out["messageId"] == ["abc@x.example"]
    assert out["inReplyTo"] == ["p@x.example"]
    assert out["references"] == ["r@x.example", "p@x.example"]


def test_alternative_related_and_mixed() -> None:
    obj = {
        "subject": "Fotos aus Köln",
        "textBody": [{"partId": "1"}],
        "htmlBody": [{"partId": "2", "type": "text/html"}],
        "attachments": [
            {"blobId": "Gimage", "type": "image/png", "cid": "img1@x", "disposition": "inline"},
            {"blobId": "Gpdf", "type": "application/pdf", "name": "Übersicht März.pdf"},
        ],
        "bodyValues": {
            "1": {"value": "Siehe Bild."},
            "2": {"value": '<p>Siehe <img src="cid:img1@x"></p>'},
        },
    }
    raw = build(obj)
    out = view(raw)
    tree = out["bodyStructure"]
    assert tree["type"] == "multipart/mixed"
    alternative, pdf = tree["subParts"]
    assert alternative["type"] == "multipart/alternative"
    text, related = alternative["subParts"]
    assert text["type"] == "text/plain"
    assert [p["type"] for p in related["subParts"]] == ["text/html", "image/png"]
    assert related["subParts"][1]["cid"] == "img1@x"
    assert pdf["name"] == "Übersicht März.pdf"
    assert pdf["disposition"] == "attachment"
    assert [p["type"] for p in out["textBody"]] == ["text/plain"]
    assert [p["type"] for p in out["htmlBody"]] == ["text/html"]
    assert [p["type"] for p in out["attachments"]] == ["image/png", "application/pdf"]
    # The bytes of each attachment come back exactly.
    root = parse(raw)
    leaves = {}

    def walk(part: Any) -> None:
        for child in part.sub_parts or ():
            walk(child)
        if part.sub_parts is None:
            leaves[part.type] = part.decoded()[0]

    walk(root)
    assert leaves["image/png"] == PNG
    assert leaves["application/pdf"] == BLOBS["Gpdf"]


def test_body_structure_taken_as_given() -> None:
    obj = {
        "bodyStructure": {
            "type": "multipart/mixed",
            "subParts": [
                {"partId": "a", "type": "text/plain", "language": ["de", "en"]},
                {
                    "blobId": "Gpdf",
                    "type": "application/pdf",
                    "disposition": "attachment",
                    "name": "a.pdf",
                    "location": "https://example.com/a.pdf",
                    "header:X-Scan:asText": "clean",
                },
            ],
        },
        "bodyValues": {"a": {"value": "Hi"}},
    }
    out = view(build(obj), PROPS | {"bodyStructure"})
    first, second = out["bodyStructure"]["subParts"]
    assert first["language"] == ["de", "en"]
    assert second["location"] == "https://example.com/a.pdf"
    assert second["name"] == "a.pdf"
    raw = build(obj)
    assert b"X-Scan: clean\r\n" in raw


def test_grouped_addresses_urls_and_all_forms() -> None:
    groups = [
        {"name": "Team Ü", "addresses": [{"name": "A", "email": "a@x.example"}]},
        {"name": None, "addresses": [{"name": None, "email": "c@x.example"}]},
    ]
    raw = build(
        {
            "header:To:asGroupedAddresses": groups,
            "header:List-Post:asURLs": ["mailto:list@x.example"],
            "header:X-Tag:asText:all": ["one", "zwei drei"],
            "header:X-Raw": " kept  as  is",
        }
    )
    props = frozenset(
        {"header:To:asGroupedAddresses", "header:List-Post:asURLs", "header:X-Tag:asText:all"}
        | {"header:X-Raw"}
    )
    out = view(raw, props)
    assert out["header:To:asGroupedAddresses"] == groups
    assert out["header:List-Post:asURLs"] == ["mailto:list@x.example"]
    assert out["header:X-Tag:asText:all"] == ["one", "zwei drei"]
    assert out["header:X-Raw"] == " kept  as  is"


def test_lines_stay_within_rfc5322_limits_rfc5322_2_1_1() -> None:
    raw = build(
        {
            "to": [{"name": f"Person {i}", "email": f"p{i}@example.com"} for i in range(30)],
            "subject": "word " * 60,
            "textBody": [{"partId": "1"}],
            "bodyValues": {"1": {"value": "x" * 5000 + "\n" + "ü" * 3000}},
        }
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    assert all(len(line) <= 998 for line in body.split(b"\r\n"))
    out = view(raw)
    assert len(out["to"]) == 30
    assert out["subject"] == "word " * 60
    assert text_of(out, out["textBody"][0]) == "x" * 5000 + "\n" + "ü" * 3000


@pytest.mark.parametrize(
    "obj",
    [
        {"subject": "hi\r\nBcc: victim@example.com"},
        {"header:X-A:asText": "a\nb"},
        {"header:X-A": " ok\r\nBcc: victim@example.com"},
        {"from": [{"name": "x\r\nBcc: y", "email": "a@b"}]},
        {"from": [{"name": None, "email": "a@b>\r\nBcc: <c@d"}]},
        {"attachments": [{"blobId": "Gpdf", "name": "a\r\nX: y"}]},
    ],
)
def test_header_injection_is_refused(obj: dict[str, Any]) -> None:
    with pytest.raises(ComposeError):
        build(obj)


def test_a_raw_fold_is_not_injection() -> None:
    out = view(build({"header:X-Long": " first\r\n second"}), frozenset({"header:X-Long"}))
    assert out["header:X-Long"] == " first\r\n second"


@pytest.mark.parametrize(
    ("obj", "properties"),
    [
        ({"headers": [{"name": "X", "value": "y"}]}, ["headers"]),
        ({"from": [], "header:From:asAddresses": []}, ["from", "header:From:asAddresses"]),
        ({"header:Content-Type": " text/plain"}, ["header:Content-Type"]),
        ({"header:From:asDate": "2020-01-01T00:00:00Z"}, ["header:From:asDate"]),
        ({"id": "M1"}, ["id"]),
        ({"size": 3}, ["size"]),
        ({"nonsense": 1}, ["nonsense"]),
        (
            {"bodyStructure": {"partId": "1"}, "textBody": [{"partId": "1"}]},
            ["textBody"],
        ),
        ({"textBody": [{"partId": "1"}, {"partId": "2"}]}, ["textBody"]),
        (
            {
                "textBody": [{"partId": "1", "type": "text/html"}],
                "bodyValues": {"1": {"value": ""}},
            },
            ["textBody/0/type"],
        ),
        (
            {
                "htmlBody": [{"partId": "1", "type": "text/plain"}],
                "bodyValues": {"1": {"value": ""}},
            },
            ["htmlBody/0/type"],
        ),
        ({"textBody": [{"partId": "1", "blobId": "Gpdf"}]}, ["textBody/0/partId"]),
        ({"textBody": [{"partId": "9"}]}, ["textBody/0/partId"]),
        (
            {
                "textBody": [{"partId": "1", "charset": "latin1"}],
                "bodyValues": {"1": {"value": ""}},
            },
            ["textBody/0/charset"],
        ),
        (
            {
                "textBody": [{"partId": "1", "header:Content-Transfer-Encoding": " base64"}],
                "bodyValues": {"1": {"value": ""}},
            },
            ["textBody/0/header:Content-Transfer-Encoding"],
        ),
        (
            {
                "subject": "a",
                "bodyStructure": {"partId": "1", "header:Subject:asText": "b"},
                "bodyValues": {"1": {"value": ""}},
            },
            ["bodyStructure/header:Subject:asText"],
        ),
        (
            {
                "textBody": [{"partId": "1"}],
                "bodyValues": {"1": {"value": "x", "isTruncated": True}},
            },
            ["bodyValues/1"],
        ),
        ({"textBody": [{"partId": "1", "headers": []}]}, ["textBody/0/headers"]),
        ({"attachments": [{"blobId": "Gpdf", "subParts": []}]}, ["attachments/0/subParts"]),
    ],
)
def test_rfc8621_4_6_constraints_are_invalid_properties(
    obj: dict[str, Any], properties: list[str]
) -> None:
    with pytest.raises(ComposeError) as caught:
        build(obj)
    assert caught.value.properties == properties


def test_every_missing_blob_is_named_rfc8621_4_6() -> None:
    with pytest.raises(MissingBlobs) as caught:
        build({"attachments": [{"blobId": "Gnope"}, {"blobId": "Gpdf"}, {"blobId": "Galso"}]})
    assert caught.value.blob_ids == ["Gnope", "Galso"]


def test_too_large() -> None:
    with pytest.raises(TooLarge):
        build({"attachments": [{"blobId": "Gimage"}]}, max_size=500)


def test_attached_message_is_never_transfer_encoded_rfc2046_5_2_1() -> None:
    inner = b"From: x@y.example\r\nSubject: inner\r\n\r\nhello\r\n"
    raw = compose(
        {"attachments": [{"blobId": "Gm", "type": "message/rfc822"}]},
        {"Gm": inner}.get,
        max_size=10_000,
    )
    assert b"Content-Transfer-Encoding: 7bit\r\n" in raw
    assert b"\r\n\r\nFrom: x@y.example\r\nSubject: inner\r\n\r\nhello\r\n" in raw
    assert b"base64" not in raw


_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), max_codepoint=0x1FFFF),
    min_size=1,
    max_size=120,
).map(lambda s: unicodedata.normalize("NFC", s).strip())


@settings(max_examples=150, deadline=None)
@given(subject=_TEXT, name=_TEXT, body=st.text(max_size=3000))
def test_round_trip_of_any_text(subject: str, name: str, body: str) -> None:
    body = body.replace("\r", "")
    obj = {
        "from": [{"name": name or None, "email": "a@example.com"}],
        "subject": subject,
        "textBody": [{"partId": "1"}],
        "bodyValues": {"1": {"value": body}},
    }
    raw = build(obj)
    out = view(raw)
    assert out["subject"] == subject
    got = out["from"][0]["name"]
    assert got == (name or None)
    assert text_of(out, out["textBody"][0]) == body
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert not re.search(rb"(?<!\r)\n", raw)
