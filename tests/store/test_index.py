"""The in-memory index on its own (store/index.py): stamping and applying change
sets, tombstones and the change log, Threads, and the snapshot and journal
forms that must give back exactly what was written."""

from __future__ import annotations

import tempfile
from pathlib import Path

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from maildir_jmap.core.records import compute_changes
from maildir_jmap.store.index import EMAIL, MAILBOX, THREAD, Index
from maildir_jmap.store.journal import (
    Journal,
    ModseqCounter,
    decode_change_set,
    encode_change_set,
)
from maildir_jmap.store.recent import RecentChanges
from maildir_jmap.store.records import Change, EmailRecord, MailboxRecord, file_ref
from maildir_jmap.store.snapshot import index_of


def inbox(index: Index) -> MailboxRecord:
    return MailboxRecord(index.new_mailbox_id(), "", ())


def email(
    n: int, mailbox_id: str, *, thread: str = "T1", received: int = 0, subject: str | None = None
) -> EmailRecord:
    return EmailRecord.make(
        id=f"M{n:04x}",
        sha256=n.to_bytes(32),
        thread_id=thread,
        files=[file_ref(mailbox_id, "cur", f"{n}.host:2,S")],
        keywords=frozenset({"$seen"}),
        size=100 + n,
        received=received or 1_700_000_000 + n,
        subject=f"subject {n}" if subject is None else subject,
    )


def commit(index: Index, change: Change) -> list[object]:
    """What Account.commit does with the journal left out: stamp, then apply."""
    ops = index.stamp(change)
    index.apply_ops(ops)
    return list(ops)


def changes(index: Index, type_name: str, since: int) -> tuple[list[str], list[str], list[str]]:
    result = compute_changes(index.change_log(type_name, since), since, None, index.modseq, str)
    return result.created, result.updated, result.destroyed


def test_every_record_takes_the_next_modseq_and_the_counter_ends_the_ops() -> None:
    index = Index()
    box = inbox(index)
    ops = commit(index, Change(mailboxes={box.id: box}, emails={"M0001": email(1, box.id)}))
    assert isinstance(ops[-1], ModseqCounter)
    assert ops[-1].modseq == index.modseq
    assert index.mailboxes[box.id].modseq < index.emails["M0001"].modseq <= index.modseq
    assert index.state(EMAIL) == f"{index.epoch}-{index.emails['M0001'].modseq}"


def test_applying_a_change_set_twice_leaves_the_index_as_once() -> None:
    """store/index.py's invariant: replaying a journaled change set after a crash
    between the journal write and the snapshot changes nothing."""
    index = Index()
    box = inbox(index)
    ops = index.stamp(Change(mailboxes={box.id: box}, emails={"M0001": email(1, box.id)}))
    index.apply_ops(ops)
    once = msgpack.packb(index.to_snapshot())
    index.apply_ops(ops)
    assert msgpack.packb(index.to_snapshot()) == once


def test_a_destroyed_email_leaves_a_tombstone_the_change_log_reports_rfc8620_5_2() -> None:
    index = Index()
    box = inbox(index)
    commit(index, Change(mailboxes={box.id: box}, emails={"M0001": email(1, box.id)}))
    seen = index.modseq
    commit(index, Change(emails_gone={"M0001"}))
    assert "M0001" not in index.emails
    assert index.tombstones["M0001"].type == EMAIL
    assert changes(index, EMAIL, seen) == ([], [], ["M0001"])
    assert changes(index, THREAD, seen) == ([], [], ["T1"])  # its Thread went with it
    assert changes(index, EMAIL, 0) == ([], [], [])  # created and destroyed since 0


def test_pruned_tombstones_raise_the_floor() -> None:
    index = Index()
    box = inbox(index)
    commit(index, Change(mailboxes={box.id: box}))
    for n in range(1, 6):
        commit(index, Change(emails={f"M{n:04x}": email(n, box.id, thread=f"T{n}")}))
    for n in range(1, 6):
        commit(index, Change(emails_gone={f"M{n:04x}"}))
    before = len(index.tombstones)
    assert index.prune_tombstones(keep=4) == before - 4
    assert len(index.tombstones) == 4
    assert index.floor > 0  # states before it: cannotCalculateChanges (mail/records.py)


def test_thread_email_ids_are_sorted_oldest_first_rfc8621_3() -> None:
    index = Index()
    box = inbox(index)
    commit(index, Change(mailboxes={box.id: box}))
    commit(index, Change(emails={"M0002": email(2, box.id, received=2_000)}))
    commit(index, Change(emails={"M0001": email(1, box.id, received=1_000)}))
    assert index.threads["T1"].email_ids == ("M0001", "M0002")


def test_a_count_only_change_keeps_props_modseq() -> None:
    """Mailbox/changes says updatedProperties when only counts moved (RFC 8621 §2.2):
    the Mailbox's modseq moves, its props_modseq does not."""
    index = Index()
    box = inbox(index)
    commit(index, Change(mailboxes={box.id: box}))
    props = index.mailboxes[box.id].props_modseq
    commit(index, Change(emails={"M0001": email(1, box.id)}))
    assert index.mailboxes[box.id].modseq > props == index.mailboxes[box.id].props_modseq
    assert index.type_modseq[MAILBOX] == index.mailboxes[box.id].modseq


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@st.composite
def histories(draw: st.DrawFn) -> list[Change]:
    """Random runs of creates, updates and destroys of Emails in two Mailboxes."""
    boxes = [MailboxRecord("Mb1", "", ()), MailboxRecord("Mb2", ".A", (draw(names) or "A",))]
    out = [Change(mailboxes={b.id: b for b in boxes})]
    alive: set[int] = set()
    for _ in range(draw(st.integers(1, 12))):
        n = draw(st.integers(1, 8))
        if n in alive and draw(st.booleans()):
            out.append(Change(emails_gone={f"M{n:04x}"}))
            alive.discard(n)
        else:
            box = draw(st.sampled_from(boxes)).id
            rec = email(n, box, thread=f"T{n % 3}", subject=draw(names))
            rec.keywords = frozenset(draw(st.sets(st.sampled_from(["$seen", "$flagged", "x"]))))
            out.append(Change(emails={rec.id: rec}, message_ids=[(f"<{n}@x>", rec.thread_id)]))
            alive.add(n)
    return out


@settings(max_examples=60, deadline=None)
@given(histories())
def test_journal_replay_and_snapshot_give_back_the_same_index(history: list[Change]) -> None:
    """Every change set through the journal codec (msgpack, as on disk), then the
    snapshot form: the index rebuilt from either is the one that was written."""
    live = Index("e1")
    records = []
    for change in history:
        ops = live.stamp(change)
        records.append(msgpack.unpackb(msgpack.packb(encode_change_set(ops)), raw=False))
        live.apply_ops(ops)
    replayed = Index("e1")
    for record in records:
        reaches, ops = decode_change_set(record)
        replayed.apply_ops(ops)
        assert reaches == replayed.modseq
    expected = msgpack.packb(live.to_snapshot())
    assert msgpack.packb(replayed.to_snapshot()) == expected
    snapshot = msgpack.unpackb(expected, raw=False, strict_map_key=False)
    assert msgpack.packb(index_of(snapshot).to_snapshot()) == expected
    with tempfile.TemporaryDirectory() as directory:  # streamed from the file, as on load
        journal = Journal(Path(directory))
        journal.write_snapshot(live.to_snapshot())
        entries = journal.snapshot_entries()
        assert entries is not None
        assert msgpack.packb(index_of(entries).to_snapshot()) == expected


@settings(max_examples=80, deadline=None)
@given(histories(), st.integers(1, 6), st.integers(0, 3))
def test_the_change_log_from_recent_changes_is_the_full_pass(
    history: list[Change], limit: int, replays: int
) -> None:
    """change_log answers from the ids changed lately (store/recent.py) whenever its
    log reaches back to ``since``: for every state, with logs cut short and journal
    records applied again (idempotent replay), that is exactly what a pass over
    every record and tombstone finds; past the log's reach it makes that pass."""
    index = Index("e1")
    index.recent = RecentChanges(limit=limit)
    applied = []
    for change in history:
        ops = index.stamp(change)
        index.apply_ops(ops)
        applied.append(ops)
    for ops in applied[len(applied) - replays :]:
        index.apply_ops(ops)
    for type_name in (MAILBOX, EMAIL, THREAD):
        for since in range(index.modseq + 1):
            assert sorted(index.change_log(type_name, since)) == sorted(
                index.scanned_log(type_name, since)
            ), (type_name, since)


def test_an_index_from_a_snapshot_logs_changes_after_it_and_scans_before() -> None:
    index = Index()
    box = inbox(index)
    commit(index, Change(mailboxes={box.id: box}, emails={"M0001": email(1, box.id)}))
    loaded = index_of(
        msgpack.unpackb(msgpack.packb(index.to_snapshot()), raw=False, strict_map_key=False)
    )
    at_load = loaded.modseq
    assert loaded.recent.since(EMAIL, at_load - 1) is None  # history before the snapshot
    commit(loaded, Change(emails={"M0002": email(2, box.id)}))
    assert list(loaded.recent.since(EMAIL, at_load) or ()) == ["M0002"]
    assert changes(loaded, EMAIL, at_load) == (["M0002"], [], [])
    assert changes(loaded, EMAIL, 0) == (["M0001", "M0002"], [], [])
