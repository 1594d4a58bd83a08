"""Golden messages: each tests/data/email/X.eml with the Email properties X.json
expects, written by hand from RFC 8621 §4.1 and §4.1.4's parseStructure algorithm,
never copied from our output (parts are compared on the keys the expectation
lists). Email/get runs with the demo webmail's bodyProperties, which name no
subParts: bodyStructure must still come whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from maildir_jmap.mail.email_view import BODY, BodyOptions, email_json, prefetch
from maildir_jmap.mime.views import DEFAULT_BODY_PROPERTIES, DEFAULT_PART, ENVELOPE
from maildir_jmap.store.account import Account
from maildir_jmap.store.maildir import deliver, make_folder

DATA = Path(__file__).parent.parent / "data" / "email"
CASES = sorted(p.stem for p in DATA.glob("*.eml"))


def matches(expected: Any, actual: Any) -> bool:
    """Equality, except that expected dicts inside lists constrain only their keys."""
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(
            matches(e, a) for e, a in zip(expected, actual, strict=True)
        )
    if isinstance(expected, dict) and isinstance(actual, dict) and "partId" in expected:
        return all(k in actual and matches(v, actual[k]) for k, v in expected.items())
    return bool(expected == actual)


@pytest.mark.parametrize("case", CASES)
def test_golden_message_rfc8621_4_1(case: str, tmp_path: Path) -> None:
    spec = json.loads((DATA / f"{case}.json").read_text(encoding="utf-8"))
    root = tmp_path / "Maildir"
    make_folder(root, marker=False)
    deliver(root, (DATA / f"{case}.eml").read_bytes(), flags="S", received=1_700_000_000)
    account = Account.open("u", root, tmp_path / "state")
    (rec,) = account.index.emails.values()
    expected: dict[str, Any] = spec["email"]
    body = BodyOptions(frozenset([*DEFAULT_BODY_PROPERTIES, "cid"]), every=True)
    actual = email_json(account, rec, frozenset(expected), body)
    assert actual is not None
    for prop, value in expected.items():
        assert matches(value, actual[prop]), f"{case}: {prop}: {actual[prop]!r}"


def test_every_message_has_an_expectation() -> None:
    assert CASES
    for case in CASES:
        assert (DATA / f"{case}.json").exists(), case


@pytest.mark.parametrize("max_bytes", [0, 7])
@pytest.mark.parametrize("case", CASES)
def test_kept_views_are_what_parsing_gives(case: str, max_bytes: int, tmp_path: Path) -> None:
    """Issue 18: the views made at index time (store/views.py) answer Email/get
    without the file, and say exactly what parsing the file says, truncation by
    maxBodyValueBytes (RFC 8621 §4.2) included."""
    root = tmp_path / "Maildir"
    make_folder(root, marker=False)
    deliver(root, (DATA / f"{case}.eml").read_bytes(), flags="S", received=1_700_000_000)
    account = Account.open("u", root, tmp_path / "state")
    (rec,) = account.index.emails.values()
    assert account.views.bodies([rec.id])[rec.id] is not None  # made while indexing
    properties = frozenset(ENVELOPE) | BODY | {"id", "preview"}
    body = BodyOptions(DEFAULT_PART, text=True, html=True, every=True, max_bytes=max_bytes)
    got = prefetch(account, [rec], properties, body)
    assert not got.roots  # nothing was parsed
    assert email_json(account, rec, properties, body, got) == email_json(
        account, rec, properties, body
    )
