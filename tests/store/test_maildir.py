"""Delivering files the way Dovecot expects (shared/MAILDIR.md "What this means for us" §3, §7)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maildir_jmap.store import maildir
from maildir_jmap.store.maildir import (
    FileName,
    crlf_size,
    deliver,
    make_folder,
    rename_with,
    unique_name,
)

NAME = re.compile(r"^[^/:]+,S=(\d+),W=(\d+)(:2,[A-Za-z]*)?$")


def folder(tmp_path: Path) -> Path:
    path = tmp_path / "Maildir"
    make_folder(path, marker=False)
    return path


def test_exact_sizes_lf_storage_and_mtime_maildir_md_3(tmp_path: Path) -> None:
    root = folder(tmp_path)
    raw = b"Subject: hi\r\nFrom: a@b\r\n\r\nline one\r\nline two\r\n"
    path = deliver(root, raw, flags="S", received=1_700_003_600)
    match = NAME.match(path.name)
    assert match, path.name
    stored = path.read_bytes()
    assert b"\r\n" not in stored  # Dovecot stores LF
    assert int(match.group(1)) == len(stored) == os.path.getsize(path)
    assert int(match.group(2)) == len(raw)  # W= is the CRLF size (RFC822.SIZE)
    assert path.stat().st_mtime == 1_700_003_600  # Dovecot's INTERNALDATE
    assert path.parent.name == "cur"
    assert list((root / "tmp").iterdir()) == []


def test_flags_are_written_in_order_maildir_md_2(tmp_path: Path) -> None:
    path = deliver(folder(tmp_path), b"x\n", flags="bSaDRF")
    assert path.name.endswith(":2,DFRSab")


def test_unseen_delivery_without_flags_goes_to_new(tmp_path: Path) -> None:
    path = deliver(folder(tmp_path), b"x\n", seen=False)
    assert path.parent.name == "new"
    assert ":2," not in path.name


def test_unique_names_do_not_collide() -> None:
    names = {unique_name() for _ in range(10_000)}
    assert len(names) == 10_000
    assert all("/" not in n and ":" not in n for n in names)


def test_maildirfolder_marker_only_for_maildirplusplus(tmp_path: Path) -> None:
    make_folder(tmp_path / ".Sub", marker=True)
    make_folder(tmp_path / "Plain", marker=False)
    assert (tmp_path / ".Sub" / "maildirfolder").exists()
    assert not (tmp_path / "Plain" / "maildirfolder").exists()
    for sub in ("cur", "new", "tmp"):
        assert (tmp_path / ".Sub" / sub).is_dir()


def test_new_files_are_owned_like_their_folder_when_root_maildir_md_7(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        return
    root = folder(tmp_path)
    for path in (root, root / "cur", root / "tmp", root / "new"):
        os.chown(path, 5000, 5000)
    delivered = deliver(root, b"x\n")
    assert (delivered.stat().st_uid, delivered.stat().st_gid) == (5000, 5000)


@settings(max_examples=50)
@given(st.binary(max_size=2000))
def test_size_fields_are_exact_for_any_bytes(raw: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = deliver(folder(Path(tmp)), raw)
        match = NAME.match(path.name)
        assert match
        stored = path.read_bytes()
        assert int(match.group(1)) == len(stored)
        assert int(match.group(2)) == crlf_size(stored)


def _add_flag(flag: str) -> Callable[[FileName], tuple[str, str]]:
    def marks(current: FileName) -> tuple[str, str]:
        return "".join(sorted(set(current.flags) | {flag})), current.letters

    return marks


def test_a_flag_change_with_the_known_name_does_not_list_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18: listing a 45k-message cur/ per flag change was 38 % of a busy
    account's time. The name the index holds is tried first, under the lock."""
    root = folder(tmp_path)
    path = deliver(root, b"x\n", flags="S")
    base = FileName.parse(path.name).base

    def listing(*_: object) -> None:
        raise AssertionError("the folder was listed")

    monkeypatch.setattr(maildir, "find_file", listing)
    renamed = rename_with(root, base, _add_flag("F"), known=path)
    assert renamed.name.endswith(":2,FS")
    assert [p.name for p in (root / "cur").iterdir()] == [renamed.name]


def test_a_known_name_another_writer_changed_is_looked_up_again(tmp_path: Path) -> None:
    """Dovecot set \\Answered since we indexed the file: the stale name is not
    there, the folder is listed, and both flags end up on the file."""
    root = folder(tmp_path)
    path = deliver(root, b"x\n", flags="S")
    parsed = FileName.parse(path.name)
    theirs = root / "cur" / parsed.with_marks("RS", "").name()
    os.rename(path, theirs)
    renamed = rename_with(root, parsed.base, _add_flag("F"), known=path)
    assert renamed.name.endswith(":2,FRS")
    assert [p.name for p in (root / "cur").iterdir()] == [renamed.name]


def test_a_rename_between_our_check_and_ours_is_read_again_maildir_md_6(
    tmp_path: Path,
) -> None:
    """Another writer renames the file after we found it (Dovecot does not take our
    lock): our rename fails, the next round reads its new name and keeps its flag."""
    root = folder(tmp_path)
    path = deliver(root, b"x\n", flags="S")
    parsed = FileName.parse(path.name)
    seen: list[str] = []

    def marks(current: FileName) -> tuple[str, str]:
        seen.append(current.flags)
        if len(seen) == 1:  # the other writer, right between our read and our rename
            os.rename(path, root / "cur" / parsed.with_marks("DS", "").name())
        return "".join(sorted(set(current.flags) | {"F"})), current.letters

    renamed = rename_with(root, parsed.base, marks, known=path)
    assert seen == ["S", "DS"]
    assert renamed.name.endswith(":2,DFS")
    assert [p.name for p in (root / "cur").iterdir()] == [renamed.name]
