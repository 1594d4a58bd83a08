"""Multipart splitting (mime/parse.py ``_split``) against the regular expression
it replaced (issue 18), on generated bodies full of near-delimiters."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from maildir_jmap.mime.parse import _split


def reference(body: bytes, boundary: str) -> list[bytes]:
    marker = re.compile(
        rb"(?:^|\r?\n)--"
        + re.escape(boundary.encode("utf-8", "replace"))
        + rb"(--)?[ \t]*(?=\r?\n|$)"
    )
    parts: list[bytes] = []
    start: int | None = None
    for match in marker.finditer(body):
        if start is not None:
            parts.append(body[start : match.start()])
        if match.group(1):
            start = None
            break
        end = match.end()
        if body[end : end + 2] == b"\r\n":
            end += 2
        elif body[end : end + 1] == b"\n":
            end += 1
        start = end
    if start is not None:
        parts.append(body[start:])
    return parts


PIECES = [b"--b", b"--b--", b"--bx", b"\r\n", b"\n", b"\r", b" ", b"\t", b"x", b"-", b"--", b"b"]


@settings(max_examples=3000)
@given(st.lists(st.sampled_from(PIECES), max_size=40), st.sampled_from(["b", "x"]))
def test_split_finds_what_the_regular_expression_found(pieces: list[bytes], boundary: str) -> None:
    body = b"".join(pieces)
    assert _split(body, boundary) == reference(body, boundary)


def test_an_ordinary_multipart() -> None:
    body = b"preamble\r\n--b\r\nA\r\n--b \r\nB\r\n--b--\r\nepilogue"
    assert _split(body, "b") == [b"A", b"B"]
    assert _split(b"--b\nonly, never closed\n", "b") == [b"only, never closed\n"]


@given(st.binary(max_size=300))
def test_base64_cleanup_skips_exactly_what_is_not_base64(raw: bytes) -> None:
    from maildir_jmap.mime.parse import NOT_BASE64

    assert raw.translate(None, NOT_BASE64) == re.sub(rb"[^A-Za-z0-9+/]", b"", raw)
