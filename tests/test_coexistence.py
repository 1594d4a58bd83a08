"""The three-actor stress of issue 14, short: a real Dovecot IMAP client, an
MDA-like raw writer and JMAP writes at once on one Maildir, both layouts, then
disk, IMAP and JMAP must agree and every /changes must replay (bench/soak.py has
the actors and the checks; ``python -m bench soak`` is the long run)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.soak import problems, run
from tests.dovecot import available

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))
OPS = int(os.environ.get("MJ_SOAK_OPS", "600"))


@pytest.mark.parametrize("layout", ["maildir++", "fs"])
def test_three_actors_agree_afterwards(tmp_path: Path, layout: str) -> None:
    report = run(layout, seed=14, ops=OPS, workdir=tmp_path)
    assert report.clean, "\n".join(problems(report)[:30])
    assert report.missed == 0
