"""The views store (store/views.py): envelopes and body views kept by Email id."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson

from maildir_jmap.mime.parse import parse
from maildir_jmap.mime.views import (
    AT,
    BodyText,
    body_view,
    envelope_as_text,
    envelope_of,
    envelope_text,
    envelope_value,
    envelope_values,
    pack_envelope,
)
from maildir_jmap.store.account import Account
from maildir_jmap.store.journal import Journal
from maildir_jmap.store.views import ViewStore
from tests.store.helpers import maildir, message, put

RAW = (
    b"From: Ada <ada@example.org>\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n"
    b"Message-ID: <1@x>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n"
)


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
        e: orjson.loads(envelope_value(t, "preview"))
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
    for email_id, data in db.execute("SELECT email_id, data FROM envelopes").fetchall():
        short = pack_envelope(envelope_values(envelope_text(data))[: AT["preview"]])
        db.execute("UPDATE envelopes SET data = ? WHERE email_id = ?", (short, email_id))
    db.commit()
    db.close()

    reopened = Account.open("u", root, state, scan=False)
    assert reopened.index.previews_found == {}
    kept = reopened.views.envelopes(ids)
    assert {e: orjson.loads(envelope_value(t, "preview")) for e, t in kept.items()} == expected
    written = Journal(reopened.journal.directory).snapshot_entries()
    assert written is not None
    rows = next(list(value) for key, value in written if key == "emails")
    assert [row[13] for row in rows] == ["", "", "", ""]
    reopened.close()
