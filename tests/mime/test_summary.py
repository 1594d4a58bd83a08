"""The index-time summary of a message: never raises, ids from CRLF content."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from maildir_jmap.mime.summary import email_id, summarize, to_crlf


def test_ids_ignore_line_endings_design_identity() -> None:
    crlf = b"Subject: x\r\n\r\nbody\r\n"
    lf = b"Subject: x\n\nbody\n"
    assert summarize(crlf).digest == summarize(lf).digest
    assert summarize(lf).size == len(crlf)
    assert email_id(summarize(lf).digest).startswith("M")
    assert to_crlf(b"a\r\nb\nc") == b"a\r\nb\r\nc"


def test_headers_decoded_rfc2047_and_eight_bit() -> None:
    raw = (
        "From: =?UTF-8?Q?Jos=C3=A9_M=C3=BCller?= <jose@example.org>\n"
        "To: Zoë <zoe@example.org>\n"
        "Subject: =?ISO-8859-1?Q?Gr=FC=DFe?= aus\n  Köln\n"
        "Date: Tue, 14 Nov 2023 22:13:20 +0000\n"
        "Message-ID: <a@b>\nReferences: <x@y>\n <z@w>\nIn-Reply-To: <z@w>\n\nHallo\n"
    ).encode()
    summary = summarize(raw)
    assert summary.sender == "José Müller <jose@example.org>"
    assert summary.subject == "Grüße aus  Köln"  # RFC 5322 unfolding keeps both spaces
    assert "zoe@example.org" in summary.to
    assert summary.sent_at == 1_700_000_000
    assert summary.message_id == "a@b"
    assert summary.references == ("x@y", "z@w")
    assert summary.in_reply_to == ("z@w",)
    assert summary.preview == "Hallo"


def test_attachment_and_html_preview() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/html\n\n"
        b"<html><head><style>p{}</style></head><body><p>Hi &amp; bye</p></body></html>\n"
        b"--b\nContent-Type: image/png\nContent-Disposition: attachment; filename=a.png\n\nxx\n--b--\n"
    )
    summary = summarize(raw)
    assert summary.has_attachment
    assert summary.preview == "Hi & bye"


def test_bad_charset_and_date_do_not_break_it() -> None:
    raw = b"Subject: =?x-unknown?Q?abc?=\nDate: yesterday\nContent-Type: text/plain; charset=nope\n\n\xff\xfe ok\n"
    summary = summarize(raw)
    assert summary.sent_at is None
    assert "ok" in summary.preview


@settings(max_examples=300)
@given(st.binary(max_size=3000))
def test_summarize_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    summary = summarize(raw)
    assert summary.size == len(to_crlf(raw))
    assert len(summary.preview) <= 256


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                ["Subject", "From", "To", "Date", "Message-ID", "References", "Content-Type"]
            ),
            st.text(max_size=80),
        ),
        max_size=8,
    ),
    st.binary(max_size=500),
)
def test_summarize_never_raises_on_arbitrary_headers(
    headers: list[tuple[str, str]], body: bytes
) -> None:
    raw = (
        b"".join(f"{k}: {v}\n".encode("utf-8", "surrogateescape") for k, v in headers)
        + b"\n"
        + body
    )
    summarize(raw)


@settings(max_examples=400)
@given(st.text(alphabet=st.sampled_from(["a", "b", " ", "\n", "\t", "\u00a0", "\u2003", "é"])))
def test_preview_reads_only_the_start_yet_says_what_the_whole_text_would(text: str) -> None:
    """RFC 8621 §4.1.4: white space collapsed, at most 256 characters; taken from
    a prefix of the text, it must equal the same made from all of it."""
    from maildir_jmap.mime.summary import PREVIEW_CHARS, _collapsed_start

    whole = re.sub(r"\s+", " ", text).strip()[:PREVIEW_CHARS]
    assert _collapsed_start(text) == whole
    long = text * 300
    assert _collapsed_start(long) == re.sub(r"\s+", " ", long).strip()[:PREVIEW_CHARS]
