"""SearchSnippet/get (RFC 8621 §5)."""

from __future__ import annotations

from pathlib import Path

from maildir_jmap.core.capabilities import CoreLimits
from maildir_jmap.mail.snippet import mark, snippet_preview
from maildir_jmap.store.maildir import deliver
from tests.mail.conftest import Jmap


async def test_subject_and_preview_marked_and_escaped_rfc8621_5(jmap: Jmap, maildir: Path) -> None:
    deliver(
        maildir,
        b"Subject: Q&A <about> Koeln & K\xc3\xb6ln\nContent-Type: text/plain; charset=utf-8\n\n"
        + b"Intro. " * 40
        + b"We met in K\xc3\xb6ln, where <b>things</b> & more happened.\n",
        flags="S",
    )
    jmap.account.rescan()
    ids = (await jmap.call("Email/query", filter={"text": "koln"}))["ids"]
    assert len(ids) == 2  # the photo and the new one
    result = await jmap.call("SearchSnippet/get", filter={"text": "koln"}, emailIds=[*ids, "Mnope"])
    assert result["notFound"] == ["Mnope"]
    snippets = {s["emailId"]: s for s in result["list"]}
    new = next(s for s in snippets.values() if s["subject"] and "Q&amp;A" in s["subject"])
    assert new["subject"] == "Q&amp;A &lt;about&gt; Koeln &amp; <mark>Köln</mark>"
    assert "<mark>Köln</mark>" in new["preview"]
    assert "&lt;b&gt;things&lt;/b&gt; &amp; more" in new["preview"]
    assert len(new["preview"].encode()) <= 255
    assert not new["preview"].startswith(
        "Intro. Intro. Intro. Intro. Intro. Intro. Intro."
    )  # near the hit


async def test_no_match_gives_nulls_and_limits_rfc8621_5_1(jmap: Jmap) -> None:
    ids = (await jmap.call("Email/query"))["ids"]
    result = await jmap.call("SearchSnippet/get", filter={"hasKeyword": "$seen"}, emailIds=ids)
    assert all(s["subject"] is None and s["preview"] is None for s in result["list"])
    assert result["notFound"] is None
    negated = await jmap.call(
        "SearchSnippet/get",
        filter={"operator": "NOT", "conditions": [{"text": "lunch"}]},
        emailIds=ids,
    )
    assert all(s["subject"] is None for s in negated["list"])  # nothing to highlight in a NOT
    assert (await jmap.error("SearchSnippet/get", emailIds="x"))["type"] == "invalidArguments"
    assert (await jmap.error("SearchSnippet/get", emailIds=[], filter={"colour": 1}))[
        "type"
    ] == "unsupportedFilter"
    too_many = await jmap.error(
        "SearchSnippet/get", emailIds=[f"M{n}" for n in range(CoreLimits().maxObjectsInGet + 1)]
    )
    assert too_many["type"] == "requestTooLarge"


def test_mark_and_preview_units() -> None:
    assert mark("a<b", [(0, 1)]) == "<mark>a</mark>&lt;b"
    assert snippet_preview("nothing here", ["absent"]) is None
    preview = snippet_preview("x " * 500 + "needle " + "y " * 500, ["needle"])
    assert preview is not None
    assert "<mark>needle</mark>" in preview
    assert len(preview.encode()) <= 255
