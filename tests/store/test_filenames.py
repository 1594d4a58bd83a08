"""The Maildir filename grammar, keyword letters and the dotlock (MAILDIR.md §2, §6)."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maildir_jmap.store import dotlock, keywords_file, maildir
from maildir_jmap.store.dotlock import folder_lock
from maildir_jmap.store.keywords import imap_names_needed, is_keyword, keywords_of, marks_for
from maildir_jmap.store.keywords_file import TooManyKeywords, add_keywords, read_keywords
from maildir_jmap.store.maildir import FileName, make_folder


@pytest.mark.parametrize(
    ("name", "base", "flags", "letters", "size", "vsize"),
    [
        (
            "1795653822.M613268P16646.vm,S=222,W=231:2,S",
            "1795653822.M613268P16646.vm,S=222,W=231",
            "S",
            "",
            222,
            231,
        ),
        ("1762000000.M1P1.jmapext", "1762000000.M1P1.jmapext", "", "", None, None),
        ("x:2,DRTbcd", "x", "DRT", "bcd", None, None),
        ("x:2,", "x", "", "", None, None),
        ("x,S=5:2,FPSXa", "x,S=5", "FPSX", "a", 5, None),
        ("x:1,experimental", "x", "", "", None, None),
    ],
)
def test_parse_filenames_maildir_md_2(
    name: str, base: str, flags: str, letters: str, size: int | None, vsize: int | None
) -> None:
    parsed = FileName.parse(name)
    assert (parsed.base, parsed.flags, parsed.letters) == (base, flags, letters)
    assert (parsed.size, parsed.vsize) == (size, vsize)


def test_flags_are_rendered_in_order_and_unknown_ones_kept_maildir_md_6_4() -> None:
    # Observed: external ":2,SFX" + STORE \Answered became ":2,FRSX".
    parsed = FileName.parse("b:2,SFX")
    assert parsed.with_marks("SFXR", "").name() == "b:2,FRSX"
    assert FileName("b").with_marks("", "ca").name() == "b:2,ac"
    assert FileName.parse("b").name() == "b"


@given(st.text(alphabet="DFPRSTX", max_size=6), st.text(alphabet="abcz", max_size=4))
def test_marks_round_trip(flags: str, letters: str) -> None:
    rendered = FileName("base,S=1").with_marks(flags, letters).name()
    parsed = FileName.parse(rendered)
    assert set(parsed.flags) == set(flags)
    assert set(parsed.letters) == set(letters)
    assert parsed.name() == rendered


def test_keywords_from_flags_and_letters_design_keywords() -> None:
    names = {"a": "$Label1", "b": "$Forwarded", "c": "Junk", "d": "NonJunk"}
    assert keywords_of("DFRS", "", {}) == {"$draft", "$flagged", "$answered", "$seen"}
    assert keywords_of("P", "", {}) == {"$forwarded"}
    assert keywords_of("", "abcd", names) == {"$label1", "$forwarded", "$junk", "$notjunk"}
    assert keywords_of("", "z", names) == set()  # a letter with no line is no keyword
    assert keywords_of("T", "", {}) == set()


def test_marks_for_writes_forwarded_as_both_and_keeps_unknowns() -> None:
    names = {"a": "$Label1", "b": "$Forwarded"}
    flags, letters = marks_for({"$seen", "$forwarded", "$label1"}, "X", "z", names)
    assert flags == "PSX"
    assert letters == "abz"
    assert marks_for(set(), "PSX", "abz", names) == ("X", "z")


def test_imap_names_needed_reuses_existing_names_whatever_their_case() -> None:
    names = {"a": "$label1", "b": "Junk"}
    assert imap_names_needed({"$label1", "$junk", "$seen", "$junk2", "$forwarded"}, names) == [
        "$Forwarded",
        "$junk2",
    ]


@pytest.mark.parametrize("bad", ["", "a b", "a(b", "x" * 256, "é", 'q"', "a\\b", "a]"])
def test_invalid_keywords_rfc8621_4_1_1(bad: str) -> None:
    assert not is_keyword(bad)


def test_dovecot_keywords_append_and_mtime_maildir_md_6_5(tmp_path: Path) -> None:
    folder = tmp_path / "M"
    make_folder(folder, marker=False)
    (folder / "dovecot-keywords").write_text("0 $Label1\n2 unknown-2\n")
    old = int((folder / "dovecot-keywords").stat().st_mtime)
    with folder_lock(folder):
        names = add_keywords(folder, ["$label1", "$Work", "Other"])
    assert names == {"a": "$Label1", "c": "unknown-2", "b": "$Work", "d": "Other"}
    assert read_keywords(folder) == names
    assert (folder / "dovecot-keywords").read_text() == "0 $Label1\n1 $Work\n2 unknown-2\n3 Other\n"
    assert int((folder / "dovecot-keywords").stat().st_mtime) > old
    assert not (folder / "dovecot-keywords.lock").exists()


def test_twenty_seventh_keyword_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "M"
    make_folder(folder, marker=False)
    with folder_lock(folder):
        add_keywords(folder, [f"k{i}" for i in range(26)])
        with pytest.raises(TooManyKeywords):
            add_keywords(folder, ["one-too-many"])
    assert len(read_keywords(folder)) == 26


def test_lock_waits_for_another_holder_maildir_md_6(tmp_path: Path) -> None:
    folder = tmp_path / "M"
    make_folder(folder, marker=False)
    lock = folder / "dovecot-uidlist.lock"
    lock.write_text("other")
    released = threading.Timer(0.3, lock.unlink)
    released.start()
    start = time.monotonic()
    with folder_lock(folder):
        waited = time.monotonic() - start
        assert lock.exists()
    assert waited >= 0.25
    assert not lock.exists()


def test_stale_lock_is_broken_after_two_minutes(tmp_path: Path) -> None:
    folder = tmp_path / "M"
    make_folder(folder, marker=False)
    lock = folder / "dovecot-uidlist.lock"
    lock.write_text("dead")
    os.utime(lock, (time.time() - 200, time.time() - 200))
    with folder_lock(folder, wait=1):
        pass
    assert not lock.exists()


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_lock_of_a_dead_process_is_broken_at_once_like_dovecot(tmp_path: Path) -> None:
    """Dovecot's dotlock rule (file-dotlock.c): a lock that names a process of this
    host that is gone is stale now, not after two minutes (issue 14)."""
    folder = tmp_path / "M"
    make_folder(folder, marker=False)
    lock = folder / "dovecot-uidlist.lock"
    lock.write_text(f"{dead_pid()}:{socket.gethostname()}")
    os.utime(lock, (time.time() - 3, time.time() - 3))  # past Dovecot's 2 s grace
    start = time.monotonic()
    with folder_lock(folder, wait=1):
        assert lock.read_text() == f"{os.getpid()}:{socket.gethostname()}"  # Dovecot's format
    assert time.monotonic() - start < 0.5
    assert not lock.exists()


@pytest.mark.parametrize(
    "content",
    [
        "LIVE:" + socket.gethostname(),  # a live process: ours waits
        "DEAD:other-host",  # another host's process: cannot tell, so it waits
        "DEAD",  # no host: not Dovecot's format
        "",
    ],
)
def test_locks_that_may_be_alive_are_respected(tmp_path: Path, content: str) -> None:
    folder = tmp_path / "M"
    make_folder(folder, marker=False)
    lock = folder / "dovecot-uidlist.lock"
    lock.write_text(content.replace("LIVE", str(os.getppid())).replace("DEAD", str(dead_pid())))
    os.utime(lock, (time.time() - 3, time.time() - 3))
    with pytest.raises(dotlock.LockTimeout), folder_lock(folder, wait=0.2):
        pass
    assert lock.exists()


def test_lock_timeout(tmp_path: Path) -> None:
    folder = tmp_path / "M"
    make_folder(folder, marker=False)
    (folder / "dovecot-uidlist.lock").write_text("busy")
    with pytest.raises(dotlock.LockTimeout), folder_lock(folder, wait=0.1):
        pass


def test_rename_marks_move_copy_remove(tmp_path: Path) -> None:
    inbox, archive, trash = (tmp_path / "M" / d for d in ("", ".Archive", ".Trash"))
    make_folder(inbox, marker=False)
    make_folder(archive, marker=True)
    make_folder(trash, marker=True)
    path = maildir.deliver(inbox, b"Subject: x\n\nbody\n", seen=False)
    base = FileName.parse(path.name).base
    flagged = maildir.rename_marks(inbox, base, "FS", "a")
    assert flagged.parent.name == "cur"
    assert flagged.name == f"{base}:2,FSa"
    assert os.stat(flagged).st_ino == os.stat(flagged).st_ino
    copy = maildir.copy_file(flagged, archive, "S", "")
    copied = FileName.parse(copy.name)
    assert (copied.flags, copied.size) == ("S", FileName.parse(flagged.name).size)
    assert copied.base != base  # a base of its own in the new folder (arriving_name)
    assert os.stat(copy).st_ino == os.stat(flagged).st_ino  # a hard link, as IMAP COPY
    moved = maildir.move_file(flagged, trash, "F", "")
    assert not flagged.exists()
    assert FileName.parse(moved.name).flags == "F"
    assert FileName.parse(moved.name).base not in (base, copied.base)
    assert moved.parent == trash / "cur"
    maildir.remove_file(moved)
    assert not moved.exists()
    assert copy.exists()


def test_rename_marks_finds_a_file_renamed_meanwhile(tmp_path: Path) -> None:
    inbox = tmp_path / "M"
    make_folder(inbox, marker=False)
    path = maildir.deliver(inbox, b"x\n", flags="S")
    base = FileName.parse(path.name).base
    os.rename(path, inbox / "cur" / f"{base}:2,RS")  # Dovecot answered it
    result = maildir.rename_marks(inbox, base, "FRS", "")
    assert result.name == f"{base}:2,FRS"
    path.unlink(missing_ok=True)
    result.unlink()
    with pytest.raises(FileNotFoundError):
        maildir.rename_marks(inbox, base, "S", "")


def test_adding_a_keyword_waits_for_dovecots_keywords_lock(tmp_path: Path) -> None:
    """dovecot-keywords.lock is Dovecot's dotlock for the keywords file; the soak
    found us failing with EEXIST on it. We wait, then read the file Dovecot wrote."""
    folder = tmp_path / "M"
    make_folder(folder, marker=False)
    (folder / "dovecot-keywords").write_text("0 $Label1\n")
    lock = folder / "dovecot-keywords.lock"
    lock.write_text("0 $Label1\n1 $Dovecots\n")  # what Dovecot is about to install

    def dovecot_finishes() -> None:
        os.rename(lock, folder / "dovecot-keywords")

    threading.Timer(0.2, dovecot_finishes).start()
    with folder_lock(folder):
        names = add_keywords(folder, ["$Ours"])
    assert names == {"a": "$Label1", "b": "$Dovecots", "c": "$Ours"}
    assert read_keywords(folder) == names


def test_a_keywords_file_dovecot_installs_just_before_our_lock_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The soak (under load) caught us reading dovecot-keywords, Dovecot installing
    its new one, and our lock and rename then dropping Dovecot's keyword. The lock
    is taken first and the file read again under it (Dovecot's own order)."""
    folder = tmp_path / "M"
    make_folder(folder, marker=False)
    (folder / "dovecot-keywords").write_text("0 $Label1\n")
    real = keywords_file.read_keywords
    calls = 0

    def racing_read(path: Path) -> dict[str, str]:
        nonlocal calls
        calls += 1
        names = real(path)
        if calls == 1:  # Dovecot finishes its update right after our first look
            (folder / "dovecot-keywords").write_text("0 $Label1\n1 $Dovecots\n")
        return names

    monkeypatch.setattr(keywords_file, "read_keywords", racing_read)
    with folder_lock(folder):
        names = add_keywords(folder, ["$Ours"])
    assert names == {"a": "$Label1", "b": "$Dovecots", "c": "$Ours"}
    assert real(folder) == names
    assert not (folder / "dovecot-keywords.lock").exists()


def test_our_copy_never_shares_a_base_with_dovecots_copy_in_flight(tmp_path: Path) -> None:
    """The soak found one message twice in a folder under one base name: Dovecot's
    IMAP COPY had hard-linked it into the folder's tmp/ (MAILDIR.md §4: it keeps the
    base) while our copy of the same message landed in cur/ with that base; Dovecot
    then renamed its link into new/. Ours arrives under a base of its own."""
    source_folder, target = tmp_path / "INBOX", tmp_path / ".Archive"
    make_folder(source_folder, marker=False)
    make_folder(target, marker=True)
    source = maildir.deliver(source_folder, b"Subject: twice\n\nx\n", flags="S")
    base = FileName.parse(source.name).base
    in_flight = target / "tmp" / "dovecot-copy"
    os.link(source, in_flight)  # Dovecot's COPY, step 1 (no lock taken yet)
    ours = maildir.copy_file(source, target, "S", "")
    os.rename(in_flight, target / "new" / base)  # Dovecot's COPY, step 2
    bases = [
        FileName.parse(p.name).base for sub in ("cur", "new") for p in (target / sub).iterdir()
    ]
    assert len(bases) == len(set(bases)) == 2
    assert FileName.parse(ours.name).base != base
    assert ours.stat().st_ino == source.stat().st_ino  # still a hard link
