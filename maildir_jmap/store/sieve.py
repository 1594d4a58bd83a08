"""The vacation response as a Sieve script for Dovecot's Pigeonhole (RFC 5230
vacation, RFC 5260 date, RFC 6609 include).

Pigeonhole runs one active script per user: ``~/.dovecot.sieve``, usually a
symlink into ``~/sieve/`` that ManageSieve clients switch. We never edit a
script the user wrote. Instead we write two of our own into the script
directory: ``jmap-vacation.sieve`` (the rule) and ``jmap.sieve``, a wrapper that
includes the rule and then whatever script was active before, and make the
wrapper the active one. A regular file in the active place is first copied to
``pre-jmap.sieve`` (a fresh name, never overwriting) and included from there,
so the user's own rules keep working exactly as before. Files are replaced
atomically; the active symlink is swapped with a rename.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from maildir_jmap.durable import fsync_dir, replace_file

log = logging.getLogger(__name__)

RULE = "jmap-vacation"
WRAPPER = "jmap"
PREVIOUS_MARK = "# previous active script: "


@dataclass(frozen=True)
class SieveLocation:
    directory: Path
    """Pigeonhole's personal script storage (``sieve = file:~/sieve``)."""
    active: Path
    """The active script link (``active=~/.dovecot.sieve``)."""


@dataclass(frozen=True)
class Vacation:
    enabled: bool
    from_date: datetime | None
    to_date: datetime | None
    subject: str | None
    text_body: str | None
    html_body: str | None
    addresses: tuple[str, ...]


def quoted(text: str) -> str:
    """A Sieve quoted string (RFC 5228 §2.4.2)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def multiline(text: str) -> str:
    """A Sieve ``text:`` literal: CRLF lines, dot-stuffed, ending in a lone dot."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    stuffed = ["." + line if line.startswith(".") else line for line in lines]
    return "text:\r\n" + "\r\n".join(stuffed) + "\r\n.\r\n"


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


_TAGS = re.compile(r"<[^>]*>")


def _mime_alternative(text: str, html: str) -> str:
    boundary = "jmap-vacation-" + os.urandom(6).hex()
    return (
        f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n"
        f"--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\n{html}\r\n"
        f"--{boundary}--\r\n"
    )


def vacation_script(vacation: Vacation) -> str:
    """The rule: nothing when disabled; else one ``vacation`` action, inside the
    fromDate/toDate window (RFC 8621 §8) compared in UTC."""
    head = "# Managed by maildir-jmap (JMAP VacationResponse); changes here are replaced.\r\n"
    if not vacation.enabled:
        return head
    conditions = []
    if vacation.from_date is not None:
        value = quoted(_utc(vacation.from_date))
        conditions.append(f'currentdate :zone "+0000" :value "ge" "iso8601" {value}')
    if vacation.to_date is not None:
        value = quoted(_utc(vacation.to_date))
        conditions.append(f'currentdate :zone "+0000" :value "lt" "iso8601" {value}')
    args = []
    if vacation.subject:
        args.append(f":subject {quoted(vacation.subject)}")
    addresses = [a for a in vacation.addresses if not a.startswith("*@")]
    if addresses:
        args.append(":addresses [" + ", ".join(quoted(a) for a in addresses) + "]")
    text = vacation.text_body
    if text is None and vacation.html_body is not None:
        # §8: a plain-text part generated from the HTML when none is given.
        text = _TAGS.sub("", vacation.html_body)
    if text is None:
        text = "I am away and will read your message when I am back."
    if vacation.html_body is not None:
        args.insert(0, ":mime")
        reason = multiline(_mime_alternative(text, vacation.html_body))
    else:
        reason = multiline(text)
    body = "vacation " + "".join(a + " " for a in args) + reason + ";"
    if conditions:
        body = "if allof(" + ",\r\n         ".join(conditions) + ") {\r\n" + body + "\r\n}"
    return head + 'require ["vacation", "date", "relational"];\r\n' + body + "\r\n"


def _previous(location: SieveLocation) -> str | None:
    """The name of the script to keep running after ours, adopting a plain file."""
    active = location.active
    wrapper = location.directory / f"{WRAPPER}.sieve"
    if active.is_symlink():
        target = Path(os.path.normpath(active.parent / os.readlink(active)))
        if target == wrapper:
            return _recorded_previous(wrapper)
        if target.parent == location.directory and target.suffix == ".sieve":
            return target.stem
        log.warning(
            "active sieve script %s is outside %s: not included", active, location.directory
        )
        return None
    if active.is_file():
        n = 0
        while True:
            name = "pre-jmap" if n == 0 else f"pre-jmap-{n}"
            adopted = location.directory / f"{name}.sieve"
            if not adopted.exists():
                break
            n += 1
        replace_file(adopted, active.read_bytes())
        return name
    return None


def _recorded_previous(wrapper: Path) -> str | None:
    try:
        for line in wrapper.read_text(encoding="utf-8").splitlines():
            if line.startswith(PREVIOUS_MARK):
                return line[len(PREVIOUS_MARK) :].strip() or None
    except FileNotFoundError:
        pass
    return None


def wrapper_script(previous: str | None) -> str:
    lines = [
        "# Managed by maildir-jmap: the JMAP vacation response, then your own rules.",
        PREVIOUS_MARK + (previous or ""),
        'require ["include"];',
        f"include :personal {quoted(RULE)};",
    ]
    if previous:
        lines.append(f"include :personal :optional {quoted(previous)};")
    return "\r\n".join(lines) + "\r\n"


def _owned(path: Path, home: Path) -> None:
    """Run as root, what we write belongs to the home's owner: Pigeonhole runs as
    the mail user and could not read a root-owned 0600 script."""
    if os.geteuid() != 0:
        return
    with contextlib.suppress(FileNotFoundError):
        info = home.stat()
        if (info.st_uid, info.st_gid) != (0, 0):
            os.chown(path, info.st_uid, info.st_gid, follow_symlinks=False)


def install(location: SieveLocation, vacation: Vacation) -> None:
    """Write the rule, the wrapper, and make the wrapper the active script."""
    home = location.active.parent
    created = not location.directory.exists()
    location.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if created:
        _owned(location.directory, home)
    rule = location.directory / f"{RULE}.sieve"
    replace_file(rule, vacation_script(vacation).encode("utf-8"))
    _owned(rule, home)
    previous = _previous(location)
    if previous is not None:
        _owned(location.directory / f"{previous}.sieve", home)
    wrapper = location.directory / f"{WRAPPER}.sieve"
    replace_file(wrapper, wrapper_script(previous).encode("utf-8"))
    _owned(wrapper, home)
    target = os.path.relpath(wrapper, location.active.parent)
    if location.active.is_symlink() and os.readlink(location.active) == target:
        return
    temporary = location.active.with_name(f".{location.active.name}.jmap-tmp")
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    temporary.symlink_to(target)
    _owned(temporary, home)
    os.replace(temporary, location.active)
    fsync_dir(location.active.parent)
