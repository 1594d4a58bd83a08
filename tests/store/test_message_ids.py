"""The Message-ID -> Thread map (store/message_ids.py) against a plain dict."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from maildir_jmap.store import message_ids
from maildir_jmap.store.message_ids import MessageIds, message_key

ids = st.text(min_size=1, max_size=12)
threads = st.sampled_from(["T1", "T2", "T3"])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(ids, threads), max_size=60), st.lists(ids, max_size=20))
def test_behaves_as_a_dict_whose_first_thread_sticks(
    pairs: list[tuple[str, str]], probes: list[str]
) -> None:
    """RFC 8621 §3: a message joins the Thread of an id it names; the Thread an id
    was first given is the one it keeps. Merges are forced often (floor 4) so
    lookups cross the sorted columns and the added keys alike."""
    message_ids.MERGE_FLOOR, floor = 4, message_ids.MERGE_FLOOR
    try:
        live = MessageIds()
        expected: dict[str, str] = {}
        for message_id, thread_id in pairs:
            assert live.setdefault(message_id, thread_id) == expected.setdefault(
                message_id, thread_id
            )
        for probe in [*probes, *expected]:
            assert live.get(probe) == expected.get(probe)
            assert (probe in live) == (probe in expected)
        assert len(live) == len(expected)
        reloaded = MessageIds(live.items())  # as a snapshot keeps it: keys, not ids
        assert dict(reloaded.items()) == dict(live.items())
        assert all(reloaded.get(m) == t for m, t in expected.items())
    finally:
        message_ids.MERGE_FLOOR = floor


def test_keys_are_stable_60_bit_ints() -> None:
    """Keys outlive the process (the snapshot keeps them): no per-process salt."""
    key = message_key("<a@example.org>")
    assert key == message_key("<a@example.org>") == message_key(key)
    assert 0 <= key < 1 << 60
    assert message_key("<b@example.org>") != key
    assert message_key("<\udcff@x>") != key  # a lone surrogate from a broken header encodes


def test_loading_keeps_the_first_of_repeated_keys() -> None:
    loaded = MessageIds([("<a@x>", "T1"), ("<a@x>", "T2"), (message_key("<b@x>"), "T3")])
    assert loaded.get("<a@x>") == "T1"
    assert loaded.get("<b@x>") == "T3"
    assert loaded.get("<c@x>") is None
