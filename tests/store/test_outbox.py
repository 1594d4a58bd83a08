"""The outbox on its own (store/outbox.py): jobs and their messages kept until
sent, found again after a restart, and a damaged job never stopping the rest."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from maildir_jmap.store.outbox import Job, Outbox, users_with_jobs


def job(submission_id: str, user: str = "alice", due: float = 100.0) -> Job:
    return Job(submission_id, user, "alice@example.org", [], ["bob@example.net"], due, 1.0)


def test_a_job_and_its_message_come_back_as_written(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    outbox.add(job("S1"), b"Subject: hi\r\n\r\nbody\r\n")
    again = Outbox(tmp_path)  # a restart
    assert again.get("S1") == job("S1")
    assert again.message("S1") == b"Subject: hi\r\n\r\nbody\r\n"
    assert [j.submission_id for j in again.jobs()] == ["S1"]


def test_saving_a_job_replaces_it_whole(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    outbox.add(job("S1"), b"x")
    changed = job("S1")
    changed.attempts, changed.recipients, changed.sending = 2, ["carol@example.net"], True
    outbox.save(changed)
    assert outbox.get("S1") == changed
    assert sorted(p.name for p in outbox.directory.iterdir()) == ["S1.eml", "S1.job"]


def test_removing_twice_is_harmless(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    outbox.add(job("S1"), b"x")
    outbox.remove("S1")
    outbox.remove("S1")
    assert outbox.get("S1") is None
    assert outbox.message("S1") is None
    assert outbox.jobs() == []


def test_an_outbox_never_used_has_no_jobs(tmp_path: Path) -> None:
    assert Outbox(tmp_path).jobs() == []
    assert not (tmp_path / "outbox").exists()  # looking creates nothing


def test_users_with_jobs_skips_a_damaged_job(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    accounts = tmp_path / "accounts"
    Outbox(accounts / "A1").add(job("S1", "alice"), b"x")
    Outbox(accounts / "A2").add(job("S2", "bob"), b"x")
    (accounts / "A3" / "outbox").mkdir(parents=True)
    (accounts / "A3" / "outbox" / "S3.job").write_bytes(b"\xc1 not msgpack")
    with caplog.at_level(logging.ERROR):
        assert users_with_jobs(tmp_path) == {"alice", "bob"}
    assert any("S3.job" in r.getMessage() for r in caplog.records)
