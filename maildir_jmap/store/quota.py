"""Dovecot's quota, kept the way Dovecot keeps it, so IMAP and JMAP refuse the same
message and report the same usage.

The rules come from Dovecot's ``plugin`` settings (and the userdb's per-user
overrides): ``quota = <backend>:<root name>[:noenforcing...]``, ``quota_rule``,
``quota_rule2``, ... and ``quota_vsizes`` (Dovecot's docs, "Quota configuration";
rule syntax as in its quota-util.c):

- ``*:storage=10M`` (or ``?:...``, a default the userdb may replace) is the
  account's limit; ``storage`` is in kilobytes unless a unit (b, k, M, G, T)
  follows, ``bytes`` in bytes, ``messages`` a count; 0 is unlimited;
- ``Trash:storage=+100M`` changes the limit for saves into mailboxes matching
  the mask (``*`` and ``?`` wildcards), ``Trash:ignore`` leaves them uncounted;
  ``%`` makes a mailbox limit relative to the default.

Two backends are served. ``count``: usage is the sum over every counted copy of
every message (virtual sizes, CRLF counted, when ``quota_vsizes = yes``; file
sizes otherwise), computed from the index. ``maildir``: usage is what
``maildirsize`` in the Maildir's root says: its first line the limits, then
``<bytes> <count>`` lines that every writer appends; it is recalculated from the
folders (``,S=`` of each file name, else its size) when it is missing, too large
(5120 bytes), broken, written for other limits or over quota with old entries,
exactly when Dovecot would.

A save is refused when the account's usage plus what it adds would pass the limit
of a mailbox it adds to (no grace: Dovecot's ``quota_grace`` applies only to
LDA/LMTP deliveries, and moves within the account are never checked, as
Dovecot's are not).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from maildir_jmap.durable import write_all
from maildir_jmap.store.index import Index
from maildir_jmap.store.quota_rules import QuotaConfigError, QuotaSettings
from maildir_jmap.store.records import EmailRecord, FileRef

__all__ = ["OverQuota", "Quota", "QuotaConfigError", "QuotaSettings", "Usage"]

log = logging.getLogger(__name__)

MAILDIRSIZE = "maildirsize"
MAILDIRSIZE_MAX = 5120
"""Dovecot reads at most this much of maildirsize; a longer file is recalculated."""
MAILDIRSIZE_STALE = 15 * 60
_SIZE = re.compile(r",([SW])=(\d+)(?=[,:]|$)")


class OverQuota(Exception):
    """The write would take the account over a quota limit."""


@dataclass(frozen=True)
class Usage:
    bytes: int
    messages: int


@dataclass
class Quota:
    """One account's quota: its usage, the check before a save and, for the
    ``maildir`` backend, the ``maildirsize`` lines after it."""

    settings: QuotaSettings
    maildir: Path
    separator: str = "."
    """The INBOX namespace's hierarchy separator: mailbox names in rules use it."""
    _counted: dict[str, bool] = field(default_factory=dict, repr=False)
    _physical: dict[str, int] = field(default_factory=dict, repr=False)
    _cached: tuple[tuple[str, int], Usage] | None = field(default=None, repr=False)

    # -- what counts -----------------------------------------------------------

    def mailbox_name(self, index: Index, mailbox_id: str) -> str | None:
        box = index.mailboxes.get(mailbox_id)
        if box is None:
            return None
        return self.separator.join(box.levels) if box.levels else "INBOX"

    def _is_counted(self, index: Index, mailbox_id: str) -> bool:
        name = self.mailbox_name(index, mailbox_id)
        if name is None:
            return False
        known = self._counted.get(name)
        if known is None:
            known = self._counted[name] = self.settings.counted(name)
        return known

    def size_of(self, index: Index, rec: EmailRecord, ref: FileRef) -> int:
        """What one copy counts: its virtual size (``W=``, else the Email's CRLF
        size) with ``quota_vsizes``, else its file size (``S=``, else stat)."""
        sizes = dict(_SIZE.findall(ref[2]))
        if self.settings.vsizes:
            return int(sizes["W"]) if "W" in sizes else rec.size
        if "S" in sizes:
            return int(sizes["S"])
        known = self._physical.get(ref[2])
        if known is None:
            box = index.mailboxes.get(ref[0])
            path = self.maildir / (box.directory if box else "") / ref[1] / (ref[2] + ref[3])
            try:
                known = path.stat().st_size
            except OSError:
                known = rec.size
            self._physical[ref[2]] = known
        return known

    def footprint(self, index: Index, rec: EmailRecord | None) -> Usage:
        """What one Email's copies count together (nothing for None)."""
        if rec is None:
            return Usage(0, 0)
        size = count = 0
        for ref in rec.files:
            if self._is_counted(index, ref[0]):
                size += self.size_of(index, rec, ref)
                count += 1
        return Usage(size, count)

    # -- usage -------------------------------------------------------------------

    def usage(self, index: Index) -> Usage:
        """Counted from the index (once per index state), or read from maildirsize."""
        if self.settings.backend == "maildir":
            return self._maildirsize(index)
        key = (index.epoch, index.modseq)
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        size = count = 0
        for rec in index.emails.values():
            used = self.footprint(index, rec)
            size += used.bytes
            count += used.messages
        self._cached = (key, Usage(size, count))
        return self._cached[1]

    def limits(self) -> tuple[int, int]:
        return self.settings.bytes, self.settings.messages

    # -- the check and the charge ----------------------------------------------

    def copy_size(self, vsize: int, physical: int) -> int:
        """What one copy of a message of these sizes counts."""
        return vsize if self.settings.vsizes else physical

    def check(self, index: Index, size: int, before: set[str], after: set[str]) -> None:
        """OverQuota if a message whose copies count ``size`` each, in the Mailboxes
        ``before`` (empty: new), may not be in ``after``: the copies it gains must
        fit under the limit of each Mailbox that receives one."""
        if not self.settings.enforcing:
            return
        more = sum(self._is_counted(index, m) for m in after) - sum(
            self._is_counted(index, m) for m in before
        )
        if more <= 0:
            return  # deletions, flag changes and moves within the account
        grow = size * more
        targets = [self.mailbox_name(index, m) for m in sorted(after - before)]
        used = self.usage(index)
        for name in [n for n in targets if n is not None] or ["INBOX"]:
            size_limit, count_limit = self.settings.limits(name)
            if size_limit and used.bytes + grow > size_limit:
                raise OverQuota(
                    f"quota exceeded: {used.bytes} octets used, {grow} more would pass "
                    f"the limit of {size_limit} for {name}"
                )
            if count_limit and used.messages + more > count_limit:
                raise OverQuota(f"quota exceeded: {count_limit} messages allowed in {name}")

    def charge(
        self,
        index: Index,
        before: Iterable[EmailRecord | None],
        after: Iterable[EmailRecord | None],
    ) -> None:
        """Record a committed change in ``maildirsize`` (the maildir backend; for
        the count backend the index is the record)."""
        if self.settings.backend != "maildir":
            return
        old = [self.footprint(index, r) for r in before]
        new = [self.footprint(index, r) for r in after]
        size = sum(u.bytes for u in new) - sum(u.bytes for u in old)
        count = sum(u.messages for u in new) - sum(u.messages for u in old)
        if size == 0 and count == 0:
            return
        path = self.maildir / MAILDIRSIZE
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            self._recalculate(index)  # the folders already hold the change
            return
        try:
            # Appends, as Maildir++ and Dovecot do (O_APPEND keeps writers apart).
            write_all(fd, f"{size} {count}\n".encode("ascii"))
        finally:
            os.close(fd)

    # -- maildirsize ---------------------------------------------------------------

    def _limit_line(self) -> str:
        size, count = self.limits()
        parts = [f"{size}S"] if size or not count else []
        if count:
            parts.append(f"{count}C")
        return ",".join(parts)

    def _maildirsize(self, index: Index) -> Usage:
        found = read_maildirsize(self.maildir / MAILDIRSIZE, self.limits(), self.settings.forced)
        return found if found is not None else self._recalculate(index)

    def _recalculate(self, index: Index) -> Usage:
        """Sum the folders as Dovecot does and write maildirsize anew (under its
        dotlock, then renamed into place); if someone holds the lock, only sum."""
        size = count = 0
        for box_id, box in index.mailboxes.items():
            if not box.selectable or not self._is_counted(index, box_id):
                continue
            for sub in ("new", "cur"):
                folder = self.maildir / box.directory / sub
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                    for entry in os.scandir(folder):
                        sizes = dict(_SIZE.findall(entry.name.partition(":")[0]))
                        if "S" in sizes:
                            size, count = size + int(sizes["S"]), count + 1
                            continue
                        with contextlib.suppress(FileNotFoundError):
                            size, count = size + entry.stat().st_size, count + 1
        text = f"{self._limit_line()}\n{size} {count}\n".encode("ascii")
        lock = self.maildir / f"{MAILDIRSIZE}.lock"
        try:
            _break_stale(lock)
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return Usage(size, count)  # Dovecot is rewriting it right now
        try:
            write_all(fd, text)
            os.fsync(fd)
            _own_like(lock, self.maildir)
            os.replace(lock, self.maildir / MAILDIRSIZE)
        except OSError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
            raise
        finally:
            os.close(fd)
        return Usage(size, count)


def read_maildirsize(path: Path, limits: tuple[int, int], forced: bool) -> Usage | None:
    """The usage ``maildirsize`` records, or None when Dovecot would recalculate it."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAILDIRSIZE_MAX + 1)
            mtime = os.fstat(handle.fileno()).st_mtime
    except FileNotFoundError:
        return None
    if len(data) > MAILDIRSIZE_MAX or b"\0" in data:
        return None
    lines = data[: data.rfind(b"\n") + 1].decode("ascii", "replace").splitlines()
    if not lines:
        return None
    if forced and _parse_limits(lines[0]) != limits:
        return None  # configured limits changed: rewritten with the new ones
    size = count = 0
    for line in lines[1:]:
        parts = line.split()
        if len(parts) != 2 or not all(_is_int(p) for p in parts):
            return None
        size, count = size + int(parts[0]), count + int(parts[1])
    if len(lines) < 2 or size < 0 or count < 0:
        return None
    size_limit, count_limit = limits
    over = (size_limit and size > size_limit) or (count_limit and count > count_limit)
    if over and (len(lines) > 2 or mtime < time.time() - MAILDIRSIZE_STALE):
        return None  # over quota: only a fresh summary is trusted
    return Usage(size, count)


def _parse_limits(line: str) -> tuple[int, int]:
    size = count = 0
    for part in line.split(","):
        if part[:-1].isdigit() and part[-1:] == "S":
            size = int(part[:-1])
        elif part[:-1].isdigit() and part[-1:] == "C":
            count = int(part[:-1])
    return size, count


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _break_stale(lock: Path) -> None:
    """Dovecot's maildirsize dotlock goes stale after 30 seconds."""
    with contextlib.suppress(FileNotFoundError):
        if lock.stat().st_mtime < time.time() - 30:
            lock.unlink()


def _own_like(path: Path, folder: Path) -> None:
    """Files we create in a Maildir belong to its owner (a root-run server)."""
    if os.geteuid() != 0:
        return
    info = folder.stat()
    os.chown(path, info.st_uid, info.st_gid)
