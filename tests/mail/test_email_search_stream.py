"""Searches sorted by receivedAt are read from the full-text index newest first, a
chunk at a time (store/search.stream + LazyIds): the answer must be exactly what
filtering every Email and sorting would give, whatever part of it is read."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from maildir_jmap.core.query import Comparator, window
from maildir_jmap.mail.email_results import LazyIds
from maildir_jmap.mail.query_cache import run_query, streamable
from maildir_jmap.store.account import Account
from maildir_jmap.store.search import order_key
from tests.store.helpers import maildir, message, put

WORDS = ["apple", "banana", "cherry", "damson"]


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> Account:
    tmp = tmp_path_factory.mktemp("stream")
    root = maildir(tmp / "Maildir", "Archive")
    rng = random.Random(3)
    for n in range(700):
        words = " ".join(rng.sample(WORDS, 2))
        parent = f"<m{n // 3 * 3}@x>" if n % 3 else None  # threads of three
        headers = {"in_reply_to": parent, "references": parent} if parent else {}
        raw = message(f"m{n}", body=f"{words} number {n}\n", message_id=f"<m{n}@x>", **headers)
        folder = root if n % 4 else root / ".Archive"
        put(folder, raw, flags="S", received=1_700_000_000 + rng.randrange(400))  # many ties
    acc = Account.open("u", root, tmp / "state")
    acc.sync_search()
    return acc


def brute_force(account: Account, word: str, inbox_only: bool, collapse: bool) -> list[str]:
    inbox = account.index.inbox()
    assert inbox is not None
    matching = account.search.search(f'"{word}"*')
    hits = [rec for rec in account.index.emails.values() if rec.id in matching]
    hits = [r for r in hits if not inbox_only or inbox.id in r.mailbox_ids]
    hits.sort(key=lambda r: (r.received, r.id), reverse=True)
    out, seen = [], set()
    for rec in hits:
        if collapse and rec.thread_id in seen:
            continue
        seen.add(rec.thread_id)
        out.append(rec.id)
    return out


@pytest.mark.parametrize("collapse", [False, True])
@pytest.mark.parametrize("inbox_only", [False, True])
def test_streamed_search_equals_filter_and_sort(
    account: Account, collapse: bool, inbox_only: bool
) -> None:
    inbox = account.index.inbox()
    assert inbox is not None
    filter_ = {"text": "banana"} | ({"inMailbox": inbox.id} if inbox_only else {})
    sort = [Comparator("receivedAt", False, None, {})]
    assert streamable(filter_, sort) is not None
    ids = run_query(account.index, filter_, sort, collapse, account)
    assert isinstance(ids, LazyIds)
    expected = brute_force(account, "banana", inbox_only, collapse)
    assert list(ids[:50]) == expected[:50]
    middle = len(expected) // 2
    assert ids.index(expected[middle]) == middle
    assert len(ids) == len(expected)  # reads the rest
    assert list(ids) == expected


def test_oldest_first_streams_too(account: Account) -> None:
    sort = [Comparator("receivedAt", True, None, {})]
    ids = run_query(account.index, {"body": "cherry"}, sort, False, account)
    expected = list(reversed(brute_force(account, "cherry", False, False)))
    assert list(ids) == expected


def test_other_sorts_and_operators_use_the_full_path(account: Account) -> None:
    by_size = [Comparator("size", False, None, {})]
    assert streamable({"text": "apple"}, by_size) is None
    newest = [Comparator("receivedAt", False, None, {})]
    either = {"operator": "OR", "conditions": [{"text": "apple"}, {"text": "damson"}]}
    assert streamable(either, newest) is None
    ids = run_query(account.index, either, newest, False, account)
    assert not isinstance(ids, LazyIds)
    assert len(ids) == len(
        {*brute_force(account, "apple", False, False)}
        | {*brute_force(account, "damson", False, False)}
    )


def test_window_reads_only_what_the_page_needs() -> None:
    pulled: list[int] = []

    def source() -> object:
        for n in range(1000):
            pulled.append(n)
            yield f"M{n}"

    ids = LazyIds(source())  # type: ignore[arg-type]
    page = window(ids, position=10, limit=5)
    assert page.ids == ["M10", "M11", "M12", "M13", "M14"]
    assert page.position == 10
    assert len(pulled) == 15
    assert window(ids, anchor="M40", anchor_offset=-2, limit=2).ids == ["M38", "M39"]
    assert len(pulled) == 41
    assert window(ids, position=-3).ids == ["M997", "M998", "M999"]
    assert ids[-1] == "M999"


def test_window_position_past_the_end_and_empty_results_rfc8620_5_5() -> None:
    assert window(LazyIds(iter([])), position=5, limit=3).position == 0
    past = window(LazyIds(iter(["a", "b"])), position=5, limit=3)
    assert past.ids == []
    assert past.position == 5


def test_order_key_sorts_like_received_then_id() -> None:
    rng = random.Random(9)
    pairs = [(rng.randrange(1000), f"M{rng.getrandbits(96):024x}") for _ in range(2000)]
    by_key = sorted(pairs, key=lambda p: order_key(*p))
    assert by_key == sorted(pairs)


def test_colliding_keys_step_aside(tmp_path: Path) -> None:
    from maildir_jmap.store.search import SearchIndex

    index = SearchIndex(tmp_path / "s.sqlite")
    twins = {"Mabcde0000000000000000001": 5, "Mabcde0000000000000000002": 5}
    added = index.sync("e", 1, twins, lambda e: {"subject": "same words"})
    assert added == 2
    assert set(index.stream('"same"*')) == set(twins)


def test_an_index_of_an_older_layout_is_rebuilt(tmp_path: Path) -> None:
    import sqlite3

    from maildir_jmap.store.search import SearchIndex

    path = tmp_path / "s.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE docs (rowid INTEGER PRIMARY KEY, email_id TEXT UNIQUE);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
        "INSERT INTO meta VALUES ('synced', 'e-1');"
        "PRAGMA user_version = 1;"
    )
    old.close()
    index = SearchIndex(path)
    assert index.synced() == ("", -1)  # not "in step" with an index it no longer has
    assert index.sync("e", 1, {"Mabcde0000000000000000001": 5}, lambda e: {"body": "x"}) == 1
