"""The folder tree of a Maildir in either Dovecot layout, and its subscriptions file.

A folder is identified by its directory relative to the root ("" is INBOX).
Parents that have no directory of their own (Maildir++ ``Sub`` of ``.Sub.Folder``)
or no cur/ (an fs-layout ``\\Noselect`` directory) are listed as not selectable,
so every folder has a parent to hang from.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from maildir_jmap.durable import write_file
from maildir_jmap.store.dotlock import LOCK_NAME, folder_lock
from maildir_jmap.store.maildir import SUBDIRS, make_folder, unique_name
from maildir_jmap.store.names import (
    FS,
    MAILDIRPP,
    BadName,
    Layout,
    check_name,
    decode_mutf7,
    encode_mutf7,
)

log = logging.getLogger(__name__)

SUBSCRIPTIONS = "subscriptions"
MAX_DEPTH = 32


@dataclass(frozen=True)
class Folder:
    directory: str
    levels: tuple[str, ...]
    selectable: bool

    @property
    def is_inbox(self) -> bool:
        return self.directory == ""


def parent_levels(levels: tuple[str, ...]) -> tuple[str, ...]:
    """The parent's levels; ``INBOX.x`` (any case) hangs from INBOX itself."""
    parent = levels[:-1]
    if len(parent) == 1 and parent[0].upper() == "INBOX":
        return ()
    return parent


def detect_layout(root: Path) -> Layout:
    """Maildir++ when any ``.Name`` folder exists or nothing says otherwise; fs when
    a plain subdirectory holds a cur/ (Dovecot's LAYOUT=fs)."""
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return MAILDIRPP
    if any(e.name.startswith(".") and e.name not in (".", "..") and e.is_dir() for e in entries):
        return MAILDIRPP
    for entry in entries:
        if (
            entry.is_dir(follow_symlinks=False)
            and entry.name not in SUBDIRS
            and (Path(entry.path) / "cur").is_dir()
        ):
            return FS
    return MAILDIRPP


class TreeMoved(Exception):
    """A directory vanished while the tree was walked (an IMAP RENAME or DELETE):
    the walk saw a mix of before and after, so it starts again."""


def list_folders(root: Path, layout: Layout) -> list[Folder]:
    """Every folder, INBOX first, parents before children. A LAYOUT=fs tree is
    walked directory by directory; if one vanishes meanwhile, the walk is taken
    again from the top, so a rename never shows its children as deleted."""
    for _ in range(10):
        try:
            return _list_folders(root, layout)
        except TreeMoved:
            continue
    raise FileNotFoundError(f"the folder tree of {root} kept changing while it was listed")


def _list_folders(root: Path, layout: Layout) -> list[Folder]:
    found: dict[str, Folder] = {"": Folder("", (), True)}
    if layout is MAILDIRPP or layout.name == "maildir++":
        _list_maildirpp(root, layout, found)
    else:
        _list_fs(root, layout, (), "", found, 0)
    # LAYOUT=fs keeps INBOX's children under ROOT/INBOX/: that directory is INBOX.
    for directory, folder in list(found.items()):
        if directory and len(folder.levels) == 1 and folder.levels[0].upper() == "INBOX":
            del found[directory]
    # Parents without a directory of their own.
    for folder in list(found.values()):
        levels = parent_levels(folder.levels)
        while levels:
            directory = layout.directory(levels)
            if directory not in found:
                found[directory] = Folder(directory, levels, False)
            levels = parent_levels(levels)
    return sorted(found.values(), key=lambda f: (len(f.levels), f.levels))


def _list_maildirpp(root: Path, layout: Layout, found: dict[str, Folder]) -> None:
    with os.scandir(root) as entries:
        for entry in entries:
            name = entry.name
            if not name.startswith(".") or name in (".", ".."):
                continue
            if not entry.is_dir(follow_symlinks=False):
                continue
            try:
                levels = layout.levels(name)
            except ValueError:
                _ignored(name)
                continue
            if len(levels) == 1 and levels[0].upper() == "INBOX":
                continue  # ".INBOX" would shadow the root; Dovecot never makes it
            found[name] = Folder(name, levels, (Path(entry.path) / "cur").is_dir())


def _ignored(name: str) -> None:
    if "DOVECOT-TRASHED" in name:
        return  # Dovecot's DELETE renames a folder to this for a moment
    log.warning("ignoring folder with a name Dovecot would not write: %r", name)


def _list_fs(
    root: Path,
    layout: Layout,
    levels: tuple[str, ...],
    directory: str,
    found: dict[str, Folder],
    depth: int,
) -> None:
    if depth > MAX_DEPTH:
        return
    path = root / directory if directory else root
    try:
        entries = list(os.scandir(path))
    except (FileNotFoundError, NotADirectoryError):
        raise TreeMoved(path) from None
    for entry in entries:
        name = entry.name
        if name.startswith(".") or name in SUBDIRS or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            level = decode_mutf7(name)
        except ValueError:
            _ignored(name)
            continue
        child_levels = (*levels, level)
        child = f"{directory}/{name}" if directory else name
        found[child] = Folder(child, child_levels, (Path(entry.path) / "cur").is_dir())
        _list_fs(root, layout, child_levels, child, found, depth + 1)


# -- changing the tree ----------------------------------------------------------------


def create_root(root: Path, uid: int | None, gid: int | None) -> None:
    """A user's Maildir as Dovecot makes it at first login: missing directories
    on the way (0700, as the mail user creates them), then cur/new/tmp. Run as
    root, they belong to the userdb's uid and gid."""
    missing = [p for p in [root, *root.parents] if not p.exists()]
    for path in reversed(missing):
        path.mkdir(mode=0o700)
        if os.geteuid() == 0 and uid is not None:
            os.chown(path, uid, gid if gid is not None else -1)
    make_folder(root, marker=False)


def create_folder(root: Path, layout: Layout, levels: tuple[str, ...]) -> Folder:
    directory = layout.directory(levels)
    if not (root / "tmp").is_dir():
        make_folder(root, marker=False)
    make_folder(root / directory, marker=layout.marker, staging=root / "tmp")
    return Folder(directory, levels, True)


def autocreate(root: Path, layout: Layout, wanted: dict[str, bool]) -> list[str]:
    """Create the top-level folders Dovecot's config creates by itself (name ->
    subscribed too, ``auto = create|subscribe``) that are not there yet, as Dovecot
    would at the user's next login; returns the names created."""
    present = {folder.levels for folder in list_folders(root, layout)}
    made: list[str] = []
    for name, subscribe in wanted.items():
        if name.upper() == "INBOX" or (name,) in present:
            continue
        try:
            check_name(name, layout)
        except BadName as exc:
            log.warning("not creating Dovecot's autocreate mailbox %r: %s", name, exc)
            continue
        create_folder(root, layout, (name,))
        if subscribe:
            subscribed = read_subscriptions(root)
            if (name,) not in subscribed:
                write_subscriptions(root, subscribed | {(name,)})
        made.append(name)
    return made


def rename_folder(
    root: Path, layout: Layout, old: tuple[str, ...], new: tuple[str, ...]
) -> dict[str, str]:
    """Rename a folder and its children; returns old directory -> new directory for
    every directory that moved. A directory rename keeps Dovecot's UIDVALIDITY
    (MAILDIR.md §4); in Maildir++ each child ``.A.x`` is renamed too (§9)."""
    moved: dict[str, str] = {}
    if layout.name == "fs":
        source, target = root / layout.directory(old), root / layout.directory(new)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.exists():
            _rename_locked(source, target)
        for folder in list_folders(root, layout):
            if folder.levels[: len(new)] == new:
                moved[layout.directory(old + folder.levels[len(new) :])] = folder.directory
        return moved
    old_dir, new_dir = layout.directory(old), layout.directory(new)
    for folder in list_folders(root, layout):
        if folder.levels[: len(old)] != old or not (root / folder.directory).exists():
            continue
        moved_to = new_dir + folder.directory[len(old_dir) :]
        _rename_locked(root / folder.directory, root / moved_to)
        moved[folder.directory] = moved_to
    return moved


def _rename_locked(source: Path, target: Path) -> None:
    """Rename a folder's directory while holding its dotlock, so a Dovecot working
    in it finishes first and never finds its own lock gone ("Our dotlock file ...
    was deleted"). The lock moves with the directory; ours is then removed there."""
    if not (source / "cur").is_dir():
        os.rename(source, target)  # an fs-layout \Noselect directory: nothing to lock
        return
    with folder_lock(source):
        deadline = time.monotonic() + DELIVERY_WAIT
        while True:
            # A save half done in tmp/ would fail its final rename: wait for it,
            # and if one began between our look and the rename, put the folder
            # back and wait again (Dovecot saves into tmp/ before it locks).
            while saves_under_way(source) and time.monotonic() < deadline:
                time.sleep(0.02)
            before = saves_under_way(source)
            os.rename(source, target)
            if saves_under_way(target) <= before or time.monotonic() > deadline:
                break
            os.rename(target, source)
        with contextlib.suppress(FileNotFoundError):
            (target / LOCK_NAME).unlink()


DELIVERY_WAIT = 2.0  # seconds a folder rename waits for saves under way in its tmp/
FRESH_TMP = 60.0  # a tmp/ file younger than this is a save under way (older: debris)


def saves_under_way(path: Path) -> set[str]:
    """The files a writer (Dovecot's APPEND or LDA, an MDA) is saving into the
    folder now: recent files in its tmp/. Dovecot writes there without the
    folder's lock and takes it only for the final rename, so renaming or deleting
    the folder meanwhile makes that save fail (Dovecot logs "unlink(.../tmp/...)
    failed")."""
    cutoff = time.time() - FRESH_TMP
    found = set()
    with contextlib.suppress(FileNotFoundError), os.scandir(path / "tmp") as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue  # our own staging files (lock files, folders being made)
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime > cutoff:
                    found.add(entry.name)
    return found


def folder_is_empty(path: Path) -> bool:
    for sub in ("cur", "new"):
        with contextlib.suppress(FileNotFoundError), os.scandir(path / sub) as entries:
            if any(True for _ in entries):
                return False
    return True


def delete_folder(root: Path, layout: Layout, levels: tuple[str, ...]) -> None:
    """Remove an empty folder's directory (with Dovecot's files in it, as Dovecot's
    own DELETE does). It is first renamed away, so it vanishes atomically; a folder
    that still holds messages is refused, so no mail is ever deleted here."""
    path = root / layout.directory(levels)
    if not path.exists():
        return
    graveyard = root / "tmp" / f".mj-deleted-{unique_name()}"
    # Under the folder's dotlock: no Dovecot is in the middle of writing there (its
    # lock would vanish under it), and nothing arrives between check and rename.
    with folder_lock(path):
        if not folder_is_empty(path):
            raise OSError(f"{path} still holds messages")
        if saves_under_way(path):
            raise OSError(f"a message is being saved into {path}")
        os.rename(path, graveyard)
        if saves_under_way(graveyard):  # a save began between the look and the rename
            os.rename(graveyard, path)
            raise OSError(f"a message is being saved into {path}")
    if layout.name == "fs":
        # Children of an fs folder are inside it: keep them (they become
        # children of a \Noselect directory, as after Dovecot's DELETE).
        keep = [e for e in os.scandir(graveyard) if e.is_dir() and e.name not in SUBDIRS]
        if keep:
            path.mkdir()
            for entry in keep:
                os.rename(entry.path, path / entry.name)
    shutil.rmtree(graveyard, ignore_errors=True)


# -- subscriptions (MAILDIR.md §1) --------------------------------------------------------


def read_subscriptions(root: Path) -> set[tuple[str, ...]]:
    """Subscribed folders as level tuples; the file uses TAB between levels."""
    try:
        text = (root / SUBSCRIPTIONS).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return set()
    lines = text.split("\n")
    if lines and lines[0].startswith("V\t"):
        lines = lines[2:] if len(lines) > 1 and lines[1] == "" else lines[1:]
    subscribed: set[tuple[str, ...]] = set()
    for line in lines:
        if not line:
            continue
        try:
            levels = tuple(decode_mutf7(part) for part in line.split("\t"))
        except ValueError:
            continue
        subscribed.add(() if len(levels) == 1 and levels[0].upper() == "INBOX" else levels)
    return subscribed


def write_subscriptions(root: Path, subscribed: set[tuple[str, ...]]) -> None:
    """Rewrite the file via tmp + rename, in Dovecot's version-2 format."""
    body = "V\t2\n\n" + "".join(
        "\t".join(encode_mutf7(part) for part in levels or ("INBOX",)) + "\n"
        for levels in sorted(subscribed)
    )
    tmp = root / f".{SUBSCRIPTIONS}.{unique_name()}"
    write_file(tmp, body.encode("utf-8"))
    st = root.stat()
    os.chmod(tmp, st.st_mode & 0o666)
    if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, 0):
        os.chown(tmp, st.st_uid, st.st_gid)
    os.rename(tmp, root / SUBSCRIPTIONS)
