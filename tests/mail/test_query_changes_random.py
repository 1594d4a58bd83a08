"""Email/queryChanges against a recomputed query after random changes (RFC 8620
§5.6, RFC 8621 §4.5): applying removed/added to the old results must give the
new results, for plain and collapsed queries, whatever happened in between."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest

from maildir_jmap.store.maildir import FileName, deliver
from tests.mail.conftest import Jmap


def mutate(
    rng: random.Random, maildir: Path, step: int, expunged: list[bytes] | None = None
) -> None:
    """One change as Dovecot or a delivery would make it. With ``expunged``, an
    expunged message's content is kept there, and may come back later under a
    different receivedAt (same content, so the same Email id: "reborn")."""
    files = [p for sub in ("cur", "new") for p in (maildir / sub).iterdir()]
    archive = maildir / ".Archive" / "cur"
    actions = ["deliver", "reply", "flag", "move", "expunge"]
    action = "reborn" if expunged and rng.random() < 0.5 else rng.choice(actions)
    if action == "reborn":
        assert expunged is not None
        raw = expunged.pop(rng.randrange(len(expunged)))
        deliver(maildir, raw, received=1_800_000_000 + rng.randrange(10**6))
    elif action == "deliver" or not files:
        deliver(
            maildir,
            f"Subject: new {step}\nMessage-ID: <n{step}@x>\n\nbody {step}\n".encode(),
            seen=rng.random() < 0.5,
        )
    elif action == "reply":
        deliver(
            maildir,
            f"Subject: Re: new\nMessage-ID: <r{step}@x>\nIn-Reply-To: <n{rng.randrange(step + 1)}@x>\n\nreply\n".encode(),
            flags="S",
        )
    elif action == "flag":
        path = rng.choice(files)
        parsed = FileName.parse(path.name)
        flags = "".join(sorted(set(parsed.flags) ^ {rng.choice("FS")}))
        os.rename(path, maildir / "cur" / parsed.with_marks(flags, parsed.letters).name())
    elif action == "move":
        path = rng.choice(files)
        os.rename(path, archive / path.name)
    else:
        victim = rng.choice(files)
        if expunged is not None:
            expunged.append(victim.read_bytes())
        victim.unlink()


@pytest.mark.parametrize("seed", range(30))
async def test_query_changes_reproduce_recomputed_results(
    jmap: Jmap, maildir: Path, seed: int
) -> None:
    rng = random.Random(seed)
    inbox = (await jmap.mailboxes())["Inbox"]["id"]
    queries: list[dict[str, Any]] = [
        {
            "filter": {"inMailbox": inbox},
            "sort": [{"property": "receivedAt", "isAscending": False}],
        },
        {
            "filter": {"inMailbox": inbox},
            "sort": [{"property": "receivedAt", "isAscending": False}],
            "collapseThreads": True,
        },
        {
            "filter": {"notKeyword": "$seen"},
            "sort": [{"property": "subject"}],
            "collapseThreads": True,
        },
    ]
    for round_ in range(4):
        before = [await jmap.call("Email/query", **q) for q in queries]
        for step in range(rng.randrange(1, 5)):
            mutate(rng, maildir, round_ * 10 + step)
        jmap.account.rescan()
        for q, old in zip(queries, before, strict=True):
            new = await jmap.call("Email/query", **q)
            delta = await jmap.call(
                "Email/queryChanges", sinceQueryState=old["queryState"], calculateTotal=True, **q
            )
            ids = [i for i in old["ids"] if i not in set(delta["removed"])]
            for item in delta["added"]:
                ids.insert(item["index"], item["id"])
            assert ids[: delta["total"]] == new["ids"], (seed, round_, q)
            assert delta["newQueryState"] == new["queryState"]


@pytest.mark.parametrize("seed", range(12))
async def test_cached_results_carried_across_changes_equal_recomputed_ones(
    jmap: Jmap, maildir: Path, seed: int
) -> None:
    """A receivedAt-ordered result kept in the cache and re-placed after each change
    (OrderedResult.update) is what filtering and sorting afresh gives. The cache
    holds every shape, and each answer must be the object carried, not a result
    computed again (with the default 16 entries, 20 shapes in turn never hit)."""
    from maildir_jmap.core.query import Comparator
    from maildir_jmap.mail.email_results import OrderedResult
    from maildir_jmap.mail.query_cache import QueryCache, cached_query, query_key, run_query

    rng = random.Random(seed)
    inbox = (await jmap.mailboxes())["Inbox"]["id"]
    account = jmap.account
    filters: list[Any] = [
        {"inMailbox": inbox},
        {"notKeyword": "$seen"},
        {"someInThreadHaveKeyword": "$flagged"},
        {"operator": "NOT", "conditions": [{"inMailbox": inbox}]},
        None,
    ]
    shapes = [
        (f, asc, collapse) for f in filters for asc in (False, True) for collapse in (False, True)
    ]
    cache = account.caches["email-query"] = QueryCache(size=len(shapes))
    for shape in shapes:  # fill the cache
        filter_, asc, collapse = shape
        ids = cached_query(account, filter_, [Comparator("receivedAt", asc, None, {})], collapse)
        assert isinstance(ids, OrderedResult)
    expunged: list[bytes] = []
    for round_ in range(8):
        for step in range(rng.randrange(1, 4)):
            mutate(rng, maildir, 100 + round_ * 10 + step, expunged)
            if rng.random() < 0.5:
                account.rescan()  # an expunge and its rebirth in one carried window
        account.rescan()
        for filter_, asc, collapse in shapes:
            sort = [Comparator("receivedAt", asc, None, {})]
            answer = cache.get(account, query_key(filter_, sort, collapse))
            assert answer is not None  # carried, not computed again
            carried = list(answer)
            fresh = list(run_query(account.index, filter_, sort, collapse, account))
            assert carried == fresh, (seed, round_, filter_, asc, collapse)
