"""The views store (store/views.py): envelopes and body views kept by Email id."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from maildir_jmap.mime.parse import parse
from maildir_jmap.mime.views import (
    AT,
    BodyText,
    body_view,
    envelope_as_text,
    envelope_of,
    envelope_text,
    envelope_values,
    pack_envelope,
)
from maildir_jmap.store.account import Account
from maildir_jmap.store.journal import Journal
from maildir_jmap.store.views import ViewStore, view_key, view_keys
from tests.store.helpers import maildir, message, put

RAW = (
    b"From: Ada <ada@example.org>\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n"
    b"Message-ID: <1@x>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n"
)

HEX = "0123456789abcdef"


@given(st.text(HEX, min_size=24, max_size=24), st.text(HEX, min_size=24, max_size=24))
def test_a_server_made_id_is_its_own_key(a: str, b: str) -> None:
    """An id of mime/summary.py ``email_id`` spells 12 bytes: its key is them,
    so two such ids share a key only if they are one id."""
    assert (view_key("M" + a) == view_key("M" + b)) == (a == b)
    key, tail = view_key("M" + a)
    assert -(1 << 63) <= key < 1 << 63
    assert 0 <= tail < 1 << 32


@given(st.text(min_size=1, max_size=40))
def test_any_other_id_has_a_key_too(email_id: str) -> None:
    key, tail = view_key(email_id)
    assert view_key(email_id) == (key, tail)
    assert -(1 << 63) <= key < 1 << 63
    assert 0 <= tail < 1 << 32


@given(
    st.lists(
        st.text(HEX, min_size=24, max_size=24).map(lambda h: "M" + h)
        | st.text(HEX + " xM", min_size=22, max_size=26).map(lambda h: "M" + h)
        | st.text(max_size=30)
    )
)
def test_the_keys_of_many_ids_are_the_key_of_each(email_ids: list[str]) -> None:
    assert view_keys(email_ids) == [view_key(e) for e in email_ids]


def test_two_ids_sharing_a_rowid_never_read_each_others_envelope(tmp_path: Path) -> None:
    """The 64 bits of the rowid agree, the 32 left over do not: the later put
    replaces the earlier, which reads as not kept (made again from its message),
    never as the other Email's envelope."""
    first, second = "M" + "ab" * 8 + "00000001", "M" + "ab" * 8 + "00000002"
    assert view_key(first)[0] == view_key(second)[0]
    one = envelope_as_text(envelope_of(parse(RAW).headers), "one")
    two = envelope_as_text(envelope_of(parse(RAW).headers), "two")
    store = ViewStore(tmp_path / "views.sqlite")
    store.put({first: one}, {})
    assert store.envelopes([first, second]) == {first: one}
    store.put({second: two}, {})
    assert store.envelopes([first, second]) == {second: two}
    store.close()


def test_whole_reads_envelopes_and_bodies_as_the_two_reads_do(tmp_path: Path) -> None:
    root = parse(RAW)
    envelope = envelope_as_text(envelope_of(root.headers), "preview")
    view = body_view(root, "Gx")
    assert view is not None
    body = BodyText.of(view)
    store = ViewStore(tmp_path / "views.sqlite")
    # Mboth: envelope and body; Mlarge: the body stored as not kept (None);
    # Mhead: only the envelope (a list view read its head); Mnone: nothing kept.
    store.put({"Mboth": envelope, "Mlarge": envelope, "Mhead": envelope}, {"Mboth": body})
    store.put({}, {"Mlarge": None})
    ids = ["Mboth", "Mlarge", "Mhead", "Mnone"]
    envelopes, bodies = store.whole(ids)
    assert envelopes == store.envelopes(ids)
    assert set(envelopes) == {"Mboth", "Mlarge", "Mhead"}
    assert bodies.keys() == store.bodies(ids).keys() == {"Mboth", "Mlarge"}
    assert bodies["Mlarge"] is None
    kept = bodies["Mboth"]
    assert kept is not None
    assert kept.lists == body.lists
    assert kept.values == body.values
    many = [f"M{n}" for n in range(1200)]  # more ids than one SELECT takes
    store.put(dict.fromkeys(many, envelope), dict.fromkeys(many, body))
    assert len(store.whole([*many, "Mnone"])[1]) == 1200
    store.close()


def test_previews_an_earlier_index_kept_in_its_records_move_to_the_envelopes(
    tmp_path: Path,
) -> None:
    """An index written before previews were kept with the envelopes has them in
    its records and envelopes without them: opening it moves them across once,
    and the snapshot it writes then has none left in its records (issue 18)."""
    root = maildir(tmp_path / "M")
    for n in range(3):
        put(root, message(f"m{n}", body=f"Preview number {n}.\n"))
    put(root, message("no text", body=""))  # an empty preview moves too, not parsed again
    state = tmp_path / "state"
    account = Account.open("u", root, state)
    ids = sorted(account.index.emails)
    expected = {
        e: orjson.loads(envelope_values(t)[AT["preview"]])
        for e, t in account.views.envelopes(ids).items()
    }
    assert sorted(expected.values()) == ["", *(f"Preview number {n}." for n in range(3))]
    snapshot = account.index.to_snapshot()
    account.close()
    # As the earlier index was: the preview in the record, not in the envelope.
    emails: Any = snapshot["emails"]
    for row in emails:
        row[13] = expected[row[0]]
    Journal(account.journal.directory).write_snapshot(snapshot)
    db = sqlite3.connect(state / "accounts" / account.account_id / "views.sqlite")
    for key, data in db.execute("SELECT key, data FROM envelope_members").fetchall():
        short = pack_envelope(envelope_values(envelope_text(data))[: AT["preview"]])
        db.execute("UPDATE envelope_members SET data = ? WHERE key = ?", (short, key))
    db.commit()
    db.close()

    reopened = Account.open("u", root, state, scan=False)
    assert reopened.index.previews_found == {}
    kept = reopened.views.envelopes(ids)
    assert {e: orjson.loads(envelope_values(t)[AT["preview"]]) for e, t in kept.items()} == expected
    written = Journal(reopened.journal.directory).snapshot_entries()
    assert written is not None
    rows = next(list(value) for key, value in written if key == "emails")
    assert [row[13] for row in rows] == ["", "", "", ""]
    reopened.close()
