"""Looking at the disk for reconcile: the folder tree, and the message files of a
folder, listed in full or, for the files inotify named, one by one. Read only."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from maildir_jmap.store.folders import Folder, list_folders, read_subscriptions
from maildir_jmap.store.keywords_file import read_keywords
from maildir_jmap.store.maildir import FileName
from maildir_jmap.store.names import Layout


@dataclass
class DiskFile:
    subdir: str
    name: str
    parsed: FileName


@dataclass
class ScanResult:
    folders: list[Folder]
    files: dict[str, dict[str, DiskFile]]  # directory -> base -> file
    keywords: dict[str, dict[str, str]]  # directory -> letter -> IMAP name
    subscribed: set[tuple[str, ...]]
    partial: dict[str, set[str]] = field(default_factory=dict)
    """directory -> the only base names looked at there (a targeted scan)."""


Names = dict[str, set[tuple[str, str]]]
"""directory -> (subdir, file name) that inotify reported there."""


def scan_names(
    path: Path, names: set[tuple[str, str]], known: dict[str, str]
) -> dict[str, DiskFile]:
    """base -> file for only the bases of ``names``: each reported name, and the
    name the index knows (``known``: base -> "subdir/name"), is checked with a stat
    instead of listing a folder that may hold 50,000 messages."""
    candidates: dict[str, list[tuple[str, str]]] = {}
    for subdir, name in names:
        if name.startswith("."):
            continue
        candidates.setdefault(FileName.parse(name).base, []).append((subdir, name))
    found: dict[str, DiskFile] = {}
    for base, seen in candidates.items():
        if base in known:
            subdir, _, name = known[base].partition("/")
            seen.append((subdir, name))
        for subdir, name in seen:
            if os.path.exists(path / subdir / name):
                parsed = FileName.parse(name)
                if "T" not in parsed.flags:
                    found[base] = DiskFile(subdir, name, parsed)
                break
    return found


def scan_folder(path: Path, only: set[str] | None = None) -> dict[str, DiskFile]:
    """base -> file for the visible messages of one folder (new/ and cur/); with
    ``only``, just the entries whose base is one of those (names are not parsed
    for the others)."""
    found: dict[str, DiskFile] = {}
    for subdir in ("new", "cur"):
        try:
            entries = os.scandir(path / subdir)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with entries:
            for entry in entries:
                name = entry.name
                if name.startswith(".") or (
                    only is not None and name.partition(":")[0] not in only
                ):
                    continue
                parsed = FileName.parse(name)
                if "T" in parsed.flags:
                    continue  # deleted, awaiting expunge: hidden from JMAP
                found[parsed.base] = DiskFile(subdir, name, parsed)
    return found


def relook(path: Path, bases: set[str]) -> dict[str, DiskFile]:
    """A second look for messages a scan did not find. Reported names go stale as
    Dovecot renames a file twice in a row (new/ to cur/, then a flag), and a readdir
    can miss a file renamed while it runs; only what this look misses too is gone."""
    return scan_folder(path, only=bases)


def scan(
    root: Path,
    layout: Layout,
    directories: Iterable[str] | None = None,
    names: Names | None = None,
    known: Callable[[str, str], str | None] | None = None,
) -> ScanResult:
    """The folder tree, plus the files of ``directories`` (all when None) listed in
    full, plus the files ``names`` reports in other folders checked one by one
    (``known(directory, base)`` gives the index's "subdir/name" for a base)."""
    folders = list_folders(root, layout)
    wanted = None if directories is None else set(directories)
    files: dict[str, dict[str, DiskFile]] = {}
    keywords: dict[str, dict[str, str]] = {}
    partial: dict[str, set[str]] = {}
    for folder in folders:
        directory = folder.directory
        path = root / directory if directory else root
        if not folder.selectable:
            continue
        if wanted is None or directory in wanted:
            files[directory] = scan_folder(path)
        elif names and directory in names and wanted is not None:
            reported = names[directory]
            bases = {FileName.parse(n).base for _, n in reported if not n.startswith(".")}
            index_names = {b: k for b in bases if known and (k := known(directory, b))}
            files[directory] = scan_names(path, reported, index_names)
            partial[directory] = bases
        else:
            continue
        keywords[directory] = read_keywords(path)
    return ScanResult(folders, files, keywords, read_subscriptions(root), partial)
