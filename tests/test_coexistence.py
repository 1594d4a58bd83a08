"""The three-actor stress of issue 14, short: a real Dovecot IMAP client, an
MDA-like raw writer and JMAP writes at once on one Maildir, both layouts, then
disk, IMAP and JMAP must agree and every /changes must replay (bench/soak.py has
the actors and the checks; ``python -m bench soak`` is the long run)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.soak import copy_races, problems, run
from bench.soak_actors import Shared
from tests.dovecot import available

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))
OPS = int(os.environ.get("MJ_SOAK_OPS", "600"))


@pytest.mark.parametrize("layout", ["maildir++", "fs"])
def test_three_actors_agree_afterwards(tmp_path: Path, layout: str) -> None:
    report = run(layout, seed=14, ops=OPS, workdir=tmp_path)
    assert report.clean, "\n".join(problems(report)[:30])
    assert report.missed == 0


def test_a_copy_race_is_counted_apart_only_when_a_refused_copy_explains_it() -> None:
    """Dovecot's "Filename keeps changing" after a COPY into a folder that went
    away is the soak's save race (bench/soak.py ``COPY_RACE``), only for the
    source folder and UID of a copy Dovecot refused into a folder now gone."""
    line = (
        "Dec 06 15:41:13 imap(alice)<1><x>: Error: Mailbox Lists: maildir_file_do("
        "/m/.Lists/cur/1.M1P1Q1.vm:2,RS): Filename keeps changing for UID=6"
    )
    folders = {(), ("Lists",), ("Archive",)}
    shared = Shared()
    shared.refused_copies += [("Lists", "6", "Archive"), ("Lists", "7", "Jmap3")]
    assert copy_races([line], shared, folders, ".") == []  # Archive is still there
    shared.refused_copies.append(("INBOX", "6", "Jmap3"))
    assert copy_races([line], shared, folders, ".") == []  # another source
    shared.refused_copies.append(("Lists", "6", "Imap9"))
    assert copy_races([line, "Error: something else"], shared, folders, ".") == [line]
