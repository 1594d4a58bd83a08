"""Snapshot + journal persistence: torn writes, replay, compaction, crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import msgpack
import pytest

from maildir_jmap.store.account import Account
from maildir_jmap.store.journal import Journal
from tests.store.helpers import maildir, message, put


def test_append_and_replay(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    for n in range(5):
        journal.append({"m": n, "ops": [["S", n]]})
    journal.close()
    assert [r["m"] for r in Journal(tmp_path).replay()] == [0, 1, 2, 3, 4]


def test_torn_last_record_is_dropped_and_cut(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append({"m": 1, "ops": []})
    journal.append({"m": 2, "ops": [["S", 2]] * 50})
    journal.close()
    path = tmp_path / "journal.msgpack"
    whole = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(whole - 7)  # a crash in the middle of the second append
    reread = Journal(tmp_path)
    assert [r["m"] for r in reread.replay()] == [1]
    assert path.stat().st_size < whole - 7  # the torn bytes are gone for good
    reread.append({"m": 3, "ops": []})
    reread.close()
    assert [r["m"] for r in Journal(tmp_path).replay()] == [1, 3]


def test_corrupt_tail_is_dropped(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append({"m": 1, "ops": []})
    journal.append({"m": 2, "ops": []})
    journal.close()
    path = tmp_path / "journal.msgpack"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # flipped bits fail the CRC
    path.write_bytes(bytes(data))
    assert [r["m"] for r in Journal(tmp_path).replay()] == [1]


def test_compaction_writes_snapshot_and_empties_journal(tmp_path: Path) -> None:
    root = maildir(tmp_path / "M", "Archive")
    for n in range(5):
        put(root, message(f"m{n}"), "S")
    account = Account.open("u", root, tmp_path / "state")
    before = {e.id: e.keywords for e in account.index.emails.values()}
    account.compact()
    assert account.journal.records == 0
    account.close()  # a restart: the owner lock (store/owner.py) allows one open at a time
    reopened = Account.open("u", root, tmp_path / "state", scan=False)
    assert {e.id: e.keywords for e in reopened.index.emails.values()} == before
    assert reopened.index.epoch == account.index.epoch
    assert reopened.index.modseq == account.index.modseq


def test_a_snapshot_written_with_emails_before_threads_loads_the_same_index(
    tmp_path: Path,
) -> None:
    """Snapshots before issue 18's streamed load put Emails before Threads; they
    read the same, a Thread's ids and states included."""
    root = maildir(tmp_path / "M")
    put(root, message("a"), "S")
    put(root, message("b", In_Reply_To="<a@example.org>"))
    account = Account.open("u", root, tmp_path / "state")
    snapshot = account.index.to_snapshot()
    account.close()
    earlier = {k: snapshot[k] for k in snapshot if k != "threads"}
    earlier["threads"] = snapshot["threads"]  # after the Emails, as written then
    assert list(earlier).index("threads") > list(earlier).index("emails")
    account.journal.snapshot_path.write_bytes(msgpack.packb(earlier, use_bin_type=True))
    reopened = Account.open("u", root, tmp_path / "state", scan=False)
    assert reopened.index.epoch == account.index.epoch
    assert {e.id: e.to_list() for e in reopened.index.emails.values()} == {
        e.id: e.to_list() for e in account.index.emails.values()
    }
    assert {t.id: (t.email_ids, t.modseq) for t in reopened.index.threads.values()} == {
        t.id: (t.email_ids, t.modseq) for t in account.index.threads.values()
    }
    assert dict(reopened.index.by_message_id.items()) == dict(account.index.by_message_id.items())


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # cut short
        lambda data: data + b"\xc1",  # something after it
        lambda data: msgpack.packb({**msgpack.unpackb(data, strict_map_key=False), "v": 2}),
        lambda data: b"\x81\xa1v\x01",  # the version and nothing else
    ],
    ids=["cut-short", "trailing-bytes", "unknown-version", "missing-entries"],
)
def test_a_damaged_snapshot_rebuilds_the_index_from_the_maildir(
    tmp_path: Path, damage: Callable[[bytes], bytes], caplog: pytest.LogCaptureFixture
) -> None:
    """A snapshot that can't be read whole starts a fresh index (a new epoch, so
    clients resync) from the Maildir, which it leaves as it was."""
    root = maildir(tmp_path / "M")
    for n in range(3):
        put(root, message(f"m{n}"), "S")
    account = Account.open("u", root, tmp_path / "state")
    ids = set(account.index.emails)
    account.compact()
    account.close()
    path = account.journal.snapshot_path
    path.write_bytes(damage(path.read_bytes()))
    files = sorted(p.name for p in root.rglob("*") if p.is_file())
    reopened = Account.open("u", root, tmp_path / "state")
    assert "rebuilding the index" in caplog.text
    assert reopened.index.epoch != account.index.epoch
    assert set(reopened.index.emails) == ids
    assert sorted(p.name for p in root.rglob("*") if p.is_file()) == files


def test_a_large_account_compacts_after_records_in_proportion_to_its_emails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18: a 100k snapshot costs 1.7 s with the account waiting, so the
    journal grows to one record per five Emails first (compact_after)."""
    from maildir_jmap.store import account as account_module
    from maildir_jmap.store.records import Change

    assert account_module.compact_after(10_000) == 2000
    assert account_module.compact_after(100_000) == 20_000
    monkeypatch.setattr(account_module, "COMPACT_RECORDS", 2)
    monkeypatch.setattr(account_module, "COMPACT_PER_EMAIL", 1)
    root = maildir(tmp_path / "M")
    for n in range(4):
        put(root, message(f"m{n}"), "")
    account = Account.open("u", root, tmp_path / "state")
    account.compact()
    rec = next(iter(account.index.emails.values()))
    for n in range(3):  # 4 Emails: compact at the 4th record, not at the 2nd
        rec = replace(rec, keywords=frozenset({f"k{n}"}))
        account.commit(Change(emails={rec.id: rec}))
        assert account.journal.records == n + 1
    account.commit(Change(emails={rec.id: replace(rec, keywords=frozenset())}))
    assert account.journal.records == 0
    account.close()


def test_records_already_in_the_snapshot_are_skipped(tmp_path: Path) -> None:
    """A crash between writing the snapshot and emptying the journal."""
    root = maildir(tmp_path / "M")
    put(root, message("one"), "S")
    account = Account.open("u", root, tmp_path / "state")
    journal_bytes = account.journal.journal_path.read_bytes()
    account.compact()
    account.journal.journal_path.write_bytes(journal_bytes)  # the truncation never happened
    account.close()
    reopened = Account.open("u", root, tmp_path / "state", scan=False)
    assert reopened.index.modseq == account.index.modseq
    assert set(reopened.index.emails) == set(account.index.emails)


def _snapshot(account: Account) -> dict[str, object]:
    index = account.index
    return {
        "emails": {
            e.id: (
                e.thread_id,
                sorted((index.mailboxes[m].directory, s, b + i) for m, s, b, i in e.files),
                e.keywords,
            )
            for e in index.emails.values()
        },
        "mailboxes": sorted((m.directory, m.role) for m in index.mailboxes.values()),
    }


def test_crash_between_journal_append_and_snapshot_loses_nothing(tmp_path: Path) -> None:
    """Kill the process right after a change is journaled, before it is applied or
    snapshotted; on restart the index equals a fresh rebuild of the same Maildir."""
    root = maildir(tmp_path / "M", "Archive")
    for n in range(3):
        put(root, message(f"first {n}"), "S")
    state = tmp_path / "state"
    first = Account.open("u", root, state)
    first.compact()
    first.close()
    for n in range(3):
        put(root / ".Archive", message(f"later {n}"), "F")
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from maildir_jmap.store import account as acc
        original = acc.Journal.append
        def append_then_die(self, record):
            original(self, record)
            os.kill(os.getpid(), signal.SIGKILL)
        acc.Journal.append = append_then_die
        acc.Account.open("u", Path({str(root)!r}), Path({str(state)!r}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=os.getcwd(), check=False)
    assert proc.returncode == -signal.SIGKILL
    recovered = Account.open("u", root, state, scan=False)
    fresh = Account.open("u", root, tmp_path / "fresh")
    assert _snapshot(recovered) == _snapshot(fresh)
    # ...and a rescan after recovery finds nothing left to do.
    assert not recovered.rescan()


def test_deleting_the_state_directory_keeps_email_and_thread_ids(tmp_path: Path) -> None:
    root = maildir(tmp_path / "M", "Sent")
    put(root, message("root"), "S")
    put(root / ".Sent", message("reply", In_Reply_To="<root@example.org>"), "S")
    first = Account.open("u", root, tmp_path / "one")
    second = Account.open("u", root, tmp_path / "two")
    assert _snapshot(first)["emails"] == _snapshot(second)["emails"]
    assert first.index.epoch != second.index.epoch  # old states are recognised as foreign


def test_pruned_tombstones_make_old_states_unanswerable(tmp_path: Path) -> None:
    from maildir_jmap.store.index import EMAIL

    root = maildir(tmp_path / "M")
    paths = [put(root, message(f"m{n}"), "S") for n in range(4)]
    account = Account.open("u", root, tmp_path / "state")
    oldest = account.index.modseq
    for path in paths[:3]:
        path.unlink()
        account.rescan()
    middle = account.index.modseq
    paths[3].unlink()
    account.rescan()
    account.compact(max_tombstones=2)
    assert account.index.floor > oldest
    assert account.index.floor <= middle
    account.close()
    reopened = Account.open("u", root, tmp_path / "state", scan=False)
    assert reopened.index.floor == account.index.floor
    assert len([t for t in reopened.index.tombstones.values() if t.type == EMAIL]) <= 2


def test_a_snapshot_with_message_ids_as_text_still_threads_replies(tmp_path: Path) -> None:
    """Snapshots before the index kept Message-IDs as hash keys (store/message_ids.py)
    hold the ids themselves: read back, a reply that arrives afterwards still joins
    its parent's Thread (RFC 8621 §3), and the next snapshot holds keys."""
    root = maildir(tmp_path / "M")
    put(root, message("a"), "S")
    account = Account.open("u", root, tmp_path / "state")
    (parent,) = account.index.emails.values()
    snapshot = account.index.to_snapshot()
    account.close()
    snapshot["message_ids"] = [["a@example.org", parent.thread_id]]  # as summaries give them
    Journal(account.journal.directory).write_snapshot(snapshot)
    put(root, message("b", In_Reply_To="<a@example.org>"), received=1_700_000_100)
    reopened = Account.open("u", root, tmp_path / "state")
    reply = next(e for e in reopened.index.emails.values() if e.subject == "b")
    assert reply.thread_id == parent.thread_id
    assert reopened.index.threads[parent.thread_id].email_ids == (parent.id, reply.id)
    reopened.compact()
    written = Journal(reopened.journal.directory).snapshot_entries()
    assert written is not None
    keys = next(list(value) for key, value in written if key == "message_ids")
    assert all(isinstance(key, int) for key, _ in keys)
    assert len(keys) == 2
