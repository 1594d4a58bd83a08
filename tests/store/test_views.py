"""The views store (store/views.py): envelopes and body views kept by Email id."""

from __future__ import annotations

from pathlib import Path

from maildir_jmap.mime.parse import parse
from maildir_jmap.mime.views import BodyText, body_view, envelope_as_text, envelope_of
from maildir_jmap.store.views import ViewStore

RAW = (
    b"From: Ada <ada@example.org>\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n"
    b"Message-ID: <1@x>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n"
)


def test_whole_reads_envelopes_and_bodies_as_the_two_reads_do(tmp_path: Path) -> None:
    root = parse(RAW)
    envelope = envelope_as_text(envelope_of(root.headers))
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
