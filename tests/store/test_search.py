"""The full-text index on its own (store/search.py): what a query word matches,
sync adding and dropping, streaming in receivedAt order across chunks, and any
text a client sends never breaking a search."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from maildir_jmap.store import search
from maildir_jmap.store.search import SearchIndex, match_expression, order_key


@pytest.fixture
def fts(tmp_path: Path) -> SearchIndex:
    return SearchIndex(tmp_path / "search.sqlite")


def docs(**texts: str) -> dict[str, dict[str, str]]:
    return {email_id: {"subject": text, "body": text} for email_id, text in texts.items()}


def sync(fts: SearchIndex, documents: dict[str, dict[str, str]], modseq: int = 1) -> int:
    received = {e: 1_700_000_000 + n for n, e in enumerate(sorted(documents))}
    return fts.sync("e1", modseq, received, documents.get)


def test_words_match_as_prefixes_without_case_or_diacritics(fts: SearchIndex) -> None:
    sync(fts, docs(Ma0001="Café Zürich meeting", Mb0002="unrelated"))
    for query in ("cafe", "CAFÉ", "zur", "meet zurich"):
        expression = match_expression(query)
        assert expression is not None
        assert fts.search(expression) == {"Ma0001"}, query


def test_columns_limit_where_a_word_is_looked_for(fts: SearchIndex) -> None:
    received = {"Ma0001": 1}
    fts.sync("e1", 1, received, lambda e: {"subject": "invoice", "cc": "carol@x.org"})
    assert fts.search(match_expression("carol", ("cc",)) or "") == {"Ma0001"}
    assert fts.search(match_expression("carol", ("body",)) or "") == set()


def test_text_without_words_matches_everything() -> None:
    assert match_expression("  !?  ") is None  # the caller then applies no condition


def test_sync_adds_new_and_drops_gone_and_remembers_where_it_was(fts: SearchIndex) -> None:
    assert sync(fts, docs(Ma0001="alpha", Mb0002="beta")) == 2
    assert sync(fts, docs(Ma0001="alpha", Mb0002="beta")) == 0  # same state: nothing
    assert sync(fts, docs(Mb0002="beta", Mc0003="gamma"), modseq=2) == 1
    assert fts.search('"alpha"*') == set()
    assert fts.search('"gamma"*') == {"Mc0003"}
    assert fts.synced() == ("e1", 2)


def test_an_unreadable_message_is_left_out_not_fatal(fts: SearchIndex) -> None:
    assert fts.sync("e1", 1, {"Ma0001": 1, "Mb0002": 2}, {"Ma0001": {"body": "x"}}.get) == 1


def test_stream_hands_out_newest_first_across_chunks(fts: SearchIndex) -> None:
    count = search.FIRST_CHUNK * 5 + 3
    received = {f"M{n:05x}": 1_000 + n for n in range(count)}
    fts.sync("e1", 1, received, lambda e: {"body": "common"})
    newest = list(fts.stream('"common"*'))
    assert newest == sorted(received, key=received.__getitem__, reverse=True)
    assert list(fts.stream('"common"*', newest_first=False)) == newest[::-1]


def test_order_key_sorts_as_received_then_id() -> None:
    assert order_key(10, "Mfffff") < order_key(11, "M00000")
    assert order_key(-5, "M00001") == order_key(0, "M00001")  # no negative rowids


def test_two_emails_with_one_key_both_get_a_row(fts: SearchIndex) -> None:
    # Same second, same first 20 bits of the id: the second steps to the next key.
    received = {"Mabcde1": 5, "Mabcde2": 5}
    fts.sync("e1", 1, received, lambda e: {"body": "twin"})
    assert fts.search('"twin"*') == {"Mabcde1", "Mabcde2"}


def test_another_schema_version_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "search.sqlite"
    fts = SearchIndex(path)
    sync(fts, docs(Ma0001="alpha"))
    fts.close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {search.SCHEMA_VERSION + 1}")
    again = SearchIndex(path)
    assert again.synced() == ("", -1)  # forgot what it had: the next sync redoes it all
    assert again.search('"alpha"*') == set()


# Unassigned and private-use code points are left out: Python's \w and SQLite's unicode61 disagree
# on whether those are letters (SQLite says yes), and no client sends them.
assigned = st.characters(exclude_categories=("Cn", "Co", "Cs"))


@settings(max_examples=200, deadline=None)
@given(st.text(assigned, max_size=40))
@example("ᦰ")  # U+19B0: a letter to Python's Unicode 14, a mark to SQLite's unicode61
@example("ᦰ needle")
def test_any_text_a_client_sends_is_a_valid_query(text: str) -> None:
    """Quotes, FTS5 operators (NEAR, ^, *, column filters) and control characters in
    a filter's text never raise: they are words or nothing, and the words find the
    document that holds them."""
    fts = SearchIndex(Path(":memory:"))
    fts.sync("e1", 1, {"Ma0001": 1}, lambda e: {"body": "needle " + text})
    expression = match_expression(text)
    if expression is not None:
        assert fts.search(expression) == {"Ma0001"}
        assert list(fts.stream(expression)) == ["Ma0001"]


def test_a_first_build_indexes_as_it_stages_and_commits_with_the_index(
    tmp_path: Path, fts: SearchIndex
) -> None:
    """Issue 18: in a first build documents go into the full-text index as the pool
    hands them over, visible to nobody until ``add_staged`` commits. A document
    whose Email did not land is dropped; one whose file's mtime the index saw
    differently moves to the index's receivedAt, so streams stay in its order."""
    other = SearchIndex(tmp_path / "search.sqlite")  # another reader
    fts.begin_direct()
    fts.stage("Ma0001", {"body": "common alpha"}, 1_000)
    fts.stage("Mb0002", {"body": "common beta"}, 2_000)
    fts.stage("Mb0002", {"body": "common beta"}, 2_000)  # the same content, a second file
    fts.stage("Mc0003", {"body": "common gamma"}, 3_000)  # its file went away
    fts.stage("Md0004", {"body": "common delta"}, 4_000)
    assert other.search('"common"*') == set()
    added = fts.add_staged([("Ma0001", 1_000), ("Mb0002", 2_000), ("Md0004", 500)])
    assert added == 3
    assert other.search('"common"*') == {"Ma0001", "Mb0002", "Md0004"}
    assert list(other.stream('"common"*')) == ["Mb0002", "Ma0001", "Md0004"]  # 500: oldest
    # The next build of new mail stages apart again, as while serving.
    fts.stage("Me0005", {"body": "common epsilon"})
    assert fts.add_staged([("Me0005", 5_000)]) == 1
    assert next(iter(other.stream('"common"*'))) == "Me0005"


def test_a_first_build_that_fails_leaves_nothing(fts: SearchIndex) -> None:
    fts.begin_direct()
    fts.stage("Ma0001", {"body": "alpha"}, 1_000)
    fts.discard_staged()
    assert fts.search('"alpha"*') == set()
    assert sync(fts, docs(Ma0001="alpha")) == 1  # and the index works as before
