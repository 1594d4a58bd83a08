"""An Email's packed record (store/email_record.py): what goes in comes back out."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from maildir_jmap.mime.summary import email_id
from maildir_jmap.store.email_record import EmailRecord, file_ref

texts = st.text(st.characters(), max_size=40)  # lone surrogates and NULs included
refs = st.lists(
    st.tuples(
        st.sampled_from(["Ba", "Bb", "Bc"]),
        st.sampled_from(["cur", "new"]),
        st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=12),
        st.sampled_from(["", ":2,", ":2,FS"]),
    ),
    min_size=1,
    max_size=4,
)


@given(
    st.binary(max_size=64),
    refs,
    st.integers(-(2**62), 2**62),
    st.integers(0, 2**40),
    st.none() | st.integers(-(2**62), 2**62),
    texts,
    texts,
    texts,
    st.booleans(),
    st.booleans(),
)
def test_fields_come_back_as_made(
    content: bytes,
    copies: list[tuple[str, str, str, str]],
    received: int,
    size: int,
    sent_at: int | None,
    subject: str,
    sender: str,
    to: str,
    has_attachment: bool,
    own_id: bool,
) -> None:
    digest = hashlib.sha256(content).hexdigest()
    eid = email_id(digest) if own_id else "Mother"  # an id not made from the hash keeps it whole
    files = [file_ref(m, d, b + i) for m, d, b, i in copies]
    rec = EmailRecord.make(
        eid, bytes.fromhex(digest), "T1", files, frozenset({"$seen"}), size, received,
        subject, sender, to, sent_at, has_attachment, modseq=7, created=7,
    )  # fmt: skip
    assert (rec.received, rec.size, rec.sent_at, rec.has_attachment) == (
        received, size, sent_at, has_attachment,
    )  # fmt: skip
    assert rec.texts() == (subject, sender, to) == (rec.subject, rec.sender, rec.to)
    assert rec.digest == digest
    assert rec.files == tuple(files)
    assert rec.mailbox_ids == {f[0] for f in files}
    again = EmailRecord.from_list(rec.to_list())
    assert again == rec
    assert again.created is again.modseq  # one int object for both


def test_setting_files_keeps_one_copy_as_its_own_file_ref() -> None:
    rec = EmailRecord.make("M1", bytes(32), "T1", [file_ref("Ba", "cur", "1.x:2,S")],
                           frozenset(), 10, 1_700_000_000)  # fmt: skip
    two = (file_ref("Ba", "cur", "1.x:2,S"), file_ref("Bb", "new", "2.x"))
    rec.files = two
    assert rec.files == two
    assert len(rec.flat) == 8
    rec.files = two[1:]
    assert rec.flat is two[1]
