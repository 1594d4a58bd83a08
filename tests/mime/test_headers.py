"""Header parsed forms (RFC 8621 §4.1.2) and header: properties (§4.1.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maildir_jmap.mime.headers import (
    HeaderProperty,
    as_addresses,
    as_date,
    as_grouped_addresses,
    as_message_ids,
    as_text,
    as_urls,
    header_value,
    parse_property,
)

EXAMPLE = ' "  James Smythe" <james@example.com>, Friends:\r\n  jane@example.com, =?UTF-8?Q?John_Sm=C3=AEth?=\r\n  <john@example.com>;'


def test_addresses_example_rfc8621_4_1_2_3() -> None:
    assert as_addresses(EXAMPLE) == [
        {"name": "James Smythe", "email": "james@example.com"},
        {"name": None, "email": "jane@example.com"},
        {"name": "John Smîth", "email": "john@example.com"},
    ]


def test_grouped_addresses_rfc5322_a_5_comments() -> None:
    raw = (
        "A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n"
        "         joe@example.org,\r\n  John <jdoe@one.test> (my dear friend); (the end of the group)"
    )
    assert as_grouped_addresses(raw) == [
        {
            "name": "A Group",
            "addresses": [
                {"name": "Chris Jones", "email": "c@public.example"},
                {"name": None, "email": "joe@example.org"},
                {"name": "John", "email": "jdoe@one.test"},
            ],
        }
    ]
    empty = "(Empty list)(start)Hidden recipients  :(nobody(that I know))  ;"
    assert as_grouped_addresses(empty) == [{"name": "Hidden recipients", "addresses": []}]


def test_grouped_addresses_example_rfc8621_4_1_2_4() -> None:
    assert as_grouped_addresses(EXAMPLE) == [
        {"name": None, "addresses": [{"name": "James Smythe", "email": "james@example.com"}]},
        {
            "name": "Friends",
            "addresses": [
                {"name": None, "email": "jane@example.com"},
                {"name": "John Smîth", "email": "john@example.com"},
            ],
        },
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" a@b.c (Ann Example)", [{"name": "Ann Example", "email": "a@b.c"}]),
        (' "Quoted \\"Q\\" Name" <q@x>', [{"name": 'Quoted "Q" Name', "email": "q@x"}]),
        (" undisclosed-recipients:;", []),
        (" <only@angle>", [{"name": None, "email": "only@angle"}]),
        (" broken, <b@c", [{"name": None, "email": "broken"}, {"name": None, "email": "b@c"}]),
        (
            " =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>",
            [{"name": "André Pirard", "email": "PIRARD@vm1.ulg.ac.be"}],
        ),
        ("", []),
        # RFC 5322 A.5: comments are CFWS, never part of the addr-spec; the one
        # right after a bare addr-spec is its name (RFC 8621 §4.1.2.3).
        (
            " Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
            [{"name": "Pete", "email": "pete@silly.test"}],
        ),
        (
            " pete(his account)@silly.test(his host)",
            [{"name": "his host", "email": "pete@silly.test"}],
        ),
        (
            " Chris Jones <c@(Chris's host.)public.example>",
            [{"name": "Chris Jones", "email": "c@public.example"}],
        ),
        (" <odd(with > inside)@x.example>", [{"name": None, "email": "odd@x.example"}]),
        # RFC 2231 §5: an encoded word's charset may carry a language.
        (
            " =?US-ASCII*EN?Q?Keith_Moore?= <moore@cs.utk.edu>",
            [{"name": "Keith Moore", "email": "moore@cs.utk.edu"}],
        ),
    ],
)
def test_addresses_edge_cases(raw: str, expected: list[dict[str, object]]) -> None:
    assert as_addresses(raw) == expected


def test_text_form_rfc8621_4_1_2_2() -> None:
    assert (
        as_text(" =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n =?UTF-8?Q?_aus?= K\u00f6ln") == "Grüße aus Köln"
    )
    assert as_text(" plain  subject ") == "plain  subject "  # only leading SP removed
    assert as_text(" a=?UTF-8?Q?x?=b") == "a=?UTF-8?Q?x?=b"  # not standalone: not decoded
    assert as_text(" =?x-unknown?Q?abc?=") == "=?x-unknown?Q?abc?="
    assert as_text(" =?UTF-8?Q?bad=00nul?=") == "badnul"  # encoded control chars dropped
    assert as_text(" Cafe\u0301") == "Café"  # NFC
    # RFC 2231 §5 languages in encoded words (charset*language) are dropped.
    assert as_text(" =?US-ASCII*EN?Q?Keith_Moore?=") == "Keith Moore"
    assert as_text(" =?utf-8*de-DE?B?R3LDvMOfZQ==?=") == "Grüße"
    assert (
        as_text(" =?ISO-8859-1?B?SWYgeW91IGNhbg==?= =?ISO-8859-2?B?IHJlYWQ=?=") == "If you can read"
    )


def test_message_ids_rfc8621_4_1_2_5() -> None:
    assert as_message_ids(" <a@b> (comment)\r\n <c@d>") == ["a@b", "c@d"]
    assert as_message_ids(" not an id") is None
    assert as_message_ids(" <a@b> junk") is None


def test_date_rfc8621_4_1_2_6() -> None:
    assert as_date(" Tue, 14 Nov 2023 23:13:20 +0100 (CET)") == "2023-11-14T23:13:20+01:00"
    assert as_date(" Tue, 14 Nov 2023 22:13:20 +0000") == "2023-11-14T22:13:20Z"
    assert as_date(" Tue, 14 Nov 2023 22:13:20 -0530") == "2023-11-14T22:13:20-05:30"
    assert as_date(" yesterday") is None


def test_urls_rfc8621_4_1_2_7() -> None:
    raw = " <mailto:list-request@example.com?subject=unsubscribe> (Use this),\r\n <https://example.com/u>"
    assert as_urls(raw) == [
        "mailto:list-request@example.com?subject=unsubscribe",
        "https://example.com/u",
    ]
    assert as_urls(" none here") is None


@pytest.mark.parametrize(
    ("prop", "parsed"),
    [
        ("header:Subject", HeaderProperty("Subject", "Raw", False)),
        ("header:subject:asText", HeaderProperty("subject", "Text", False)),
        ("header:Resent-To:asAddresses:all", HeaderProperty("Resent-To", "Addresses", True)),
        (
            "header:X-Custom:asDate",
            HeaderProperty("X-Custom", "Date", False),
        ),  # unknown field: any form
        ("header:List-Post:asURLs:all", HeaderProperty("List-Post", "URLs", True)),
    ],
)
def test_header_properties_rfc8621_4_1_3(prop: str, parsed: HeaderProperty) -> None:
    assert parse_property(prop) == parsed


@pytest.mark.parametrize(
    "prop",
    [
        "header:From:asDate",  # a form the field does not allow
        "header:Subject:asAddresses",
        "header:Date:asText",
        "header:X:asNothing",
        "header:X:all:asText",  # suffixes in the wrong order
        "header:",
        "header:Sp ace",
        "header:caf\u00e9",
        "subject",
    ],
)
def test_invalid_header_properties(prop: str) -> None:
    assert parse_property(prop) is None


def test_last_instance_or_all_rfc8621_4_1_3() -> None:
    fields = [("To", " a@b"), ("Subject", " one"), ("to", " c@d")]
    assert header_value(fields, HeaderProperty("TO", "Addresses", False)) == [
        {"name": None, "email": "c@d"}
    ]
    assert header_value(fields, HeaderProperty("to", "Raw", True)) == [" a@b", " c@d"]
    assert header_value(fields, HeaderProperty("X-None", "Raw", False)) is None
    assert header_value(fields, HeaderProperty("X-None", "Text", True)) == []


@given(st.text(max_size=200))
def test_parsers_never_raise(raw: str) -> None:
    as_text(raw)
    as_addresses(raw)
    as_grouped_addresses(raw)
    as_message_ids(raw)
    as_date(raw)
    as_urls(raw)
