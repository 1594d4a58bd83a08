"""MIME structure, body decomposition and body values (RFC 8621 §4.1.4)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from maildir_jmap.mime.parse import body_value, decompose, parse, split_head


def leaf(label: str, type_: str, disposition: str | None = None, extra: str = "") -> str:
    head = f"Content-Type: {type_}\r\n"
    if disposition:
        head += f"Content-Disposition: {disposition}\r\n"
    return head + extra + f"\r\n{label}\r\n"


def multipart(subtype: str, boundary: str, *parts: str) -> str:
    body = "".join(f"--{boundary}\r\n{p}" for p in parts)
    return f"Content-Type: multipart/{subtype}; boundary={boundary}\r\n\r\n{body}--{boundary}--\r\n"


def test_the_rfc_example_decomposes_as_the_rfc_says_rfc8621_4_1_4() -> None:
    message = multipart(
        "mixed", "b1",
        leaf("A", "text/plain", "inline"),
        multipart(
            "mixed", "b2",
            multipart(
                "alternative", "b3",
                multipart(
                    "mixed", "b4",
                    leaf("B", "text/plain", "inline"),
                    leaf("C", "image/jpeg", "inline"),
                    leaf("D", "text/plain", "inline"),
                ),
                multipart("related", "b5", leaf("E", "text/html"), leaf("F", "image/jpeg")),
            ),
            leaf("G", "image/jpeg", "attachment"),
            leaf("H", "application/x-excel"),
            leaf("J", "message/rfc822"),
        ),
        leaf("K", "text/plain", "inline"),
    )  # fmt: skip
    root = parse(("Subject: example\r\n" + message).encode())
    text, html, attachments = decompose(root)

    def labels(parts: list) -> list[str]:  # type: ignore[type-arg]
        return [p.body.decode().strip() for p in parts]

    assert labels(text) == ["A", "B", "C", "D", "K"]
    assert labels(html) == ["A", "E", "K"]
    assert labels(attachments) == ["C", "F", "G", "H", "J"]
    assert root.part_id is None  # multiparts have no partId
    assert [p.part_id for p in text] == ["1", "2", "3", "4", "10"]


def test_headers_keep_their_raw_form_rfc8621_4_1_2_1() -> None:
    headers, body = split_head(
        b"Subject:  two spaces\r\n folded\r\nX-Bad line\r\nTo: a@b\r\n\r\nbody"
    )
    assert headers == [("Subject", "  two spaces\r\n folded"), ("To", " a@b")]
    assert body == b"body"
    assert split_head(b"Subject: only headers") == ([("Subject", " only headers")], b"")
    assert split_head(b"\nno headers") == ([], b"no headers")


def test_part_properties_rfc8621_4_1_4() -> None:
    root = parse(
        b"Content-Type: multipart/mixed; boundary=x\n\n--x\n"
        b"Content-Type: text/plain; charset=ISO-8859-1\nContent-Transfer-Encoding: quoted-printable\n"
        b"Content-Language: de, en (English)\nContent-Location: http://e.x/a\n\nGr=FC=DFe\n"
        b'--x\nContent-Type: image/png; name="ignored.png"\n'
        b"Content-Disposition: attachment; filename*=UTF-8''K%C3%B6ln.png\n"
        b"Content-Id: <img1@x>\nContent-Transfer-Encoding: base64\n\naGVs\nbG8=\n--x--\n"
    )
    assert root.sub_parts is not None
    text, image = root.sub_parts
    assert (text.type, text.charset, text.language, text.location) == (
        "text/plain", "iso-8859-1", ["de", "en"], "http://e.x/a",
    )  # fmt: skip
    # The line break before a boundary belongs to the boundary (RFC 2046 §5.1.1).
    assert body_value(text) == {"value": "Grüße", "isEncodingProblem": False, "isTruncated": False}
    assert (image.name, image.disposition, image.cid, image.size) == (
        "Köln.png",
        "attachment",
        "img1@x",
        5,
    )
    assert image.decoded() == (b"hello", False)


def test_body_values_problems_and_truncation() -> None:
    bad = parse(b"Content-Type: text/plain; charset=utf-8\n\ncaf\xe9 ok\r\nline\n")
    value = body_value(bad)
    assert value["isEncodingProblem"] is True
    assert value["value"] == "caf\ufffd ok\nline\n"
    unknown = parse(b"Content-Type: text/plain; charset=x-klingon\n\nqapla'\n")
    assert body_value(unknown)["isEncodingProblem"] is True
    utf8 = parse("Content-Type: text/plain; charset=utf-8\n\n€€€".encode())
    assert body_value(utf8, max_bytes=4) == {
        "value": "€",
        "isEncodingProblem": False,
        "isTruncated": True,
    }
    html = parse(b'Content-Type: text/html\n\n<p>hi</p><a href="https://example.com">x</a>')
    assert body_value(html, max_bytes=20)["value"] == "<p>hi</p>"  # not inside a tag


def test_missing_close_delimiter_and_digest_defaults() -> None:
    root = parse(
        b"Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: inner\n\nx\n--d\n\ny"
    )
    assert root.sub_parts is not None
    assert [p.type for p in root.sub_parts] == ["message/rfc822", "message/rfc822"]
    plain = parse(b"no headers at all")
    assert (plain.type, plain.charset, plain.part_id) == ("text/plain", "us-ascii", "1")


@settings(max_examples=300)
@given(st.binary(max_size=2000))
def test_parse_never_raises_and_sizes_are_consistent(raw: bytes) -> None:
    root = parse(raw)
    text, html, attachments = decompose(root)
    for part in [*text, *html, *attachments]:
        assert part.part_id is not None
        assert part.size == len(part.decoded()[0])
        body_value(part, 100)


@settings(max_examples=100)
@given(
    st.lists(
        st.sampled_from(["text/plain", "text/html", "image/png", "application/pdf"]),
        min_size=1,
        max_size=6,
    )
)
def test_every_leaf_is_shown_or_attached(types: list[str]) -> None:
    message = multipart("mixed", "zz", *(leaf(f"P{i}", t) for i, t in enumerate(types)))
    text, html, attachments = decompose(parse(message.encode()))
    shown = {id(p) for p in [*text, *html, *attachments]}
    assert len(shown) == len(types)


@settings(max_examples=400)
@given(st.binary(max_size=600), st.sampled_from(["base64", "BASE64 ", "quoted-printable", "7bit"]))
def test_a_counted_size_is_the_decoded_size(body: bytes, encoding: str) -> None:
    """Part.size counts base64 instead of decoding it: the same number for any body,
    stray characters, padding in the middle and a dangling sextet included."""
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n !"
    if encoding.strip().lower() == "base64":
        body = bytes(alphabet[b % len(alphabet)] for b in body)
    part = parse(b"Content-Transfer-Encoding: " + encoding.encode() + b"\r\n\r\n" + body)
    assert part.size == len(part.decoded()[0])
