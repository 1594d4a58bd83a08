"""Message-level writes that combine flags, keyword letters and file operations.

``set_keywords`` gives one file exactly a set of JMAP keywords, adding names to
the folder's dovecot-keywords first (MAILDIR.md "What this means for us" §5);
``move`` and ``copy`` carry a message to another folder with its letters
re-mapped to that folder's own file (§5: letters are per folder). Each raises
``TooManyKeywords`` before touching the message when a folder has no letter left.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from maildir_jmap.mime.summary import to_crlf
from maildir_jmap.store.dotlock import folder_lock
from maildir_jmap.store.index import Index
from maildir_jmap.store.keywords import imap_names_needed, jmap_keyword, keywords_of, marks_for
from maildir_jmap.store.keywords_file import add_keywords, read_keywords
from maildir_jmap.store.maildir import FileName, copy_file, find_file, move_file, rename_with
from maildir_jmap.store.records import EmailRecord


def folder_of(path: Path) -> Path:
    """The Maildir folder a message file lives in (its cur/ or new/ parent)."""
    return path.parent.parent


def keyword_names(
    folder: Path, keywords: Iterable[str], spelled: dict[str, str] | None = None
) -> dict[str, str]:
    names = read_keywords(folder)
    needed = imap_names_needed(keywords, names, spelled)
    if needed:
        with folder_lock(folder):
            names = add_keywords(folder, needed)
    return names


def current_keywords(path: Path) -> set[str]:
    parsed = FileName.parse(path.name)
    return keywords_of(parsed.flags, parsed.letters, read_keywords(folder_of(path)))


def set_keywords(path: Path, keywords: Iterable[str]) -> Path:
    """Rename ``path`` so its flags and letters say exactly ``keywords``."""
    wanted = frozenset(keywords)
    return edit_keywords(path, lambda _: wanted, wanted)[0]


def edit_keywords(
    path: Path, change: Callable[[set[str]], frozenset[str]], needed: Iterable[str]
) -> tuple[Path, frozenset[str]]:
    """Rename ``path`` to the keywords ``change`` makes of the ones its current name
    says (read under the folder lock, right before the rename). ``needed`` are the
    keywords ``change`` may add: their dovecot-keywords letters are made first."""
    folder = folder_of(path)
    names = keyword_names(folder, needed)
    result: frozenset[str] = frozenset()

    def marks(current: FileName) -> tuple[str, str]:
        nonlocal result
        result = change(keywords_of(current.flags, current.letters, names))
        return marks_for(result, current.flags, current.letters, names)

    renamed = rename_with(folder, FileName.parse(path.name).base, marks, known=path)
    return renamed, result


def _target_marks(path: Path, target: Path, keywords: Iterable[str] | None) -> tuple[str, str]:
    parsed = FileName.parse(path.name)
    wanted = set(keywords) if keywords is not None else current_keywords(path)
    source_names = read_keywords(folder_of(path)).values()
    names = keyword_names(target, wanted, {jmap_keyword(n): n for n in source_names})
    # Unknown letters of the source mean nothing in the target: drop them there.
    flags, letters = marks_for(wanted, parsed.flags, "", names)
    return flags, letters


def move(path: Path, target: Path, keywords: Iterable[str] | None = None) -> Path:
    """Move a message to folder ``target`` keeping its base name; its keywords
    (by default the ones it has) are written with the target's letters."""
    flags, letters = _target_marks(path, target, keywords)
    return move_file(path, target, flags, letters)


def copy(path: Path, target: Path, keywords: Iterable[str] | None = None) -> Path:
    """Copy a message into ``target`` (a hard link where possible), same base name."""
    flags, letters = _target_marks(path, target, keywords)
    return copy_file(path, target, flags, letters)


def message_path(root: Path, index: Index, rec: EmailRecord) -> Path | None:
    """A current path of one of the Email's files (Dovecot may have renamed it)."""
    for mailbox_id, subdir, base, info in rec.files:
        mailbox = index.mailboxes.get(mailbox_id)
        if mailbox is None:
            continue
        folder = root / mailbox.directory if mailbox.directory else root
        path = folder / subdir / (base + info)
        if path.exists():
            return path
        found = find_file(folder, base)
        if found is not None:
            return found
    return None


def read_message(root: Path, index: Index, rec: EmailRecord) -> bytes | None:
    """The message in its CRLF form (what downloads serve and sizes count)."""
    path = message_path(root, index, rec)
    if path is None:
        return None
    try:
        return to_crlf(path.read_bytes())
    except FileNotFoundError:
        return None


def read_head(root: Path, index: Index, rec: EmailRecord, limit: int = 65536) -> bytes | None:
    """The message's header section (CRLF form) without reading the body: list
    views ask for From and Subject, not for attachments."""
    for _ in range(2):  # a second try after looking the file up again
        path = message_path(root, index, rec)
        if path is None:
            return None
        try:
            with open(path, "rb") as handle:
                data = handle.read(limit)
                if b"\n\n" not in data and b"\r\n\r\n" not in data:
                    data += handle.read()
        except FileNotFoundError:
            continue  # renamed between the lookup and the open
        end = data.find(b"\n\n")
        return to_crlf(data if end < 0 else data[: end + 2])
    return None
