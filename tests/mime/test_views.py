"""The kept envelope's form (mime/views.py ``pack_envelope``): JSON members with
their ends, read whole by an initial sync and by position by a list view."""

from __future__ import annotations

import itertools
from typing import Any

import msgpack
import orjson
from hypothesis import given
from hypothesis import strategies as st

from maildir_jmap.mime.views import (
    AT,
    ENVELOPE,
    KEPT,
    envelope_text,
    envelope_values,
    is_whole,
    members,
    members_at,
    pack_envelope,
    runs_of,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(st.lists(json_values, min_size=len(KEPT), max_size=len(KEPT)))
def test_a_whole_envelope_reads_back_as_the_members_email_get_writes(values: list[Any]) -> None:
    texts = [orjson.dumps(v) for v in values]
    kept = pack_envelope(texts)
    assert is_whole(kept)
    assert envelope_values(kept) == texts
    assert orjson.loads(b"{" + members(kept) + b"}") == dict(zip(KEPT, values, strict=True))
    for prop in KEPT:
        assert orjson.loads(envelope_values(kept)[AT[prop]]) == values[AT[prop]]
    for chosen in ([AT["from"], AT["subject"], AT["preview"]], [0], [len(KEPT) - 1], [1, 2, 3, 7]):
        spliced = b"{" + b",".join(members_at(kept, runs_of(chosen))) + b"}"
        assert orjson.loads(spliced) == {KEPT[at]: values[at] for at in chosen}


@given(st.lists(json_values, min_size=len(ENVELOPE), max_size=len(ENVELOPE)))
def test_an_envelope_kept_without_its_preview_is_not_whole(values: list[Any]) -> None:
    texts = [orjson.dumps(v) for v in values]
    kept = pack_envelope(texts)
    assert not is_whole(kept)
    assert envelope_values(kept) == texts
    assert envelope_text(kept) == kept


@given(st.lists(json_values, min_size=len(KEPT), max_size=len(KEPT)))
def test_the_former_form_a_msgpack_array_of_values_is_read_as_the_present(
    values: list[Any],
) -> None:
    texts = [orjson.dumps(v) for v in values]
    assert envelope_text(msgpack.packb(texts)) == pack_envelope(texts)


@given(st.sets(st.integers(0, len(KEPT) - 1)))
def test_runs_cover_the_positions_and_only_them(positions: set[int]) -> None:
    runs = runs_of(sorted(positions))
    assert [at for first, last in runs for at in range(first, last + 1)] == sorted(positions)
    assert all(b[0] > a[1] + 1 for a, b in itertools.pairwise(runs))


def test_the_first_form_a_msgpack_map_is_read_without_its_preview() -> None:
    """Kept before previews were: it reads back with the convenience values and
    no preview, so it is not whole (and is made again, or given the records')."""
    parsed = {prop: None for prop in ENVELOPE} | {"subject": "Grüße"}
    kept = envelope_text(msgpack.packb(parsed))
    assert not is_whole(kept)
    assert envelope_values(kept) == [orjson.dumps(parsed[prop]) for prop in ENVELOPE]
