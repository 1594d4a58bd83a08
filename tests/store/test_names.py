"""Folder names: modified UTF-7 (RFC 3501 §5.1.3), layouts, hostile names."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maildir_jmap.store.names import FS, MAILDIRPP, BadName, check_name, decode_mutf7, encode_mutf7

# Examples from RFC 3501 §5.1.3 and names Dovecot wrote in our measurements.
KNOWN = [
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("Entwürfe", "Entw&APw-rfe"),
    ("A&B", "A&-B"),
    ("Grüße & Küsse", "Gr&APwA3w-e &- K&APw-sse"),
    ("📷", "&2D3c9w-"),
    ("plain", "plain"),
]


@pytest.mark.parametrize(("text", "encoded"), KNOWN)
def test_known_encodings_rfc3501_5_1_3(text: str, encoded: str) -> None:
    assert encode_mutf7(text) == encoded
    assert decode_mutf7(encoded) == text


@given(st.text())
def test_round_trip(text: str) -> None:
    try:
        text.encode("utf-16-be")
    except UnicodeEncodeError:  # lone surrogates cannot be encoded by anyone
        return
    assert decode_mutf7(encode_mutf7(text)) == text


@given(st.text())
def test_encoding_is_printable_ascii(text: str) -> None:
    try:
        encoded = encode_mutf7(text)
    except UnicodeEncodeError:
        return
    assert all(0x20 <= ord(c) <= 0x7E for c in encoded)


@pytest.mark.parametrize("bad", ["&", "&Jjo", "&Jjo!-", "&AGE-", "é", "&ZeVnLIqe", "&A-"])
def test_malformed_input_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"UTF-7|ASCII"):
        decode_mutf7(bad)


@given(st.binary(max_size=40))
def test_decoder_never_crashes_unexpectedly(raw: bytes) -> None:
    text = raw.decode("latin-1")
    with contextlib.suppress(ValueError):
        decode_mutf7(text)


def test_layout_directories_maildir_md_1() -> None:
    assert MAILDIRPP.directory(()) == ""
    assert MAILDIRPP.directory(("Sub", "Folder")) == ".Sub.Folder"
    assert FS.directory(("Sub", "Folder")) == "Sub/Folder"
    assert MAILDIRPP.directory(("Entwürfe",)) == ".Entw&APw-rfe"
    assert MAILDIRPP.levels(".Entw&APw-rfe.x") == ("Entwürfe", "x")
    assert FS.levels("a/b") == ("a", "b")
    for bad in (".", "..", "x", ".a..b"):
        with pytest.raises(ValueError, match=r"folder|level"):
            MAILDIRPP.levels(bad)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "..",
        ".",
        ".hidden",
        "a/b",
        "../x",
        "x\x00y",
        "tab\there",
        "new\nline",
        "\u202eevil",
        "cur",
        "tmp",
        "NEW",
        "dovecot.index",
        "subscriptions",
        "maildirfolder",
        " padded",
        "x" * 1000,
        "€" * 100,
        5,
        None,
    ],
)
def test_hostile_names_are_refused(name: object) -> None:
    for layout in (MAILDIRPP, FS):
        with pytest.raises(BadName):
            check_name(name, layout)


def test_separator_is_refused_only_where_it_separates() -> None:
    with pytest.raises(BadName):
        check_name("a.b", MAILDIRPP)
    assert check_name("a.b", FS) == "a.b"
    with pytest.raises(BadName):
        check_name("INBOX", FS, top_level=True)
    assert check_name("Inbox", FS) == "Inbox"


def test_names_are_nfc_normalised() -> None:
    assert check_name("Entwu\u0308rfe", MAILDIRPP) == "Entwürfe"
