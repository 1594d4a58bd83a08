"""Mailbox roles (RFC 8621 §2) from Dovecot's ``special_use`` config, else from names.

MAILDIR.md §1: Dovecot keeps special-use attributes in its config, not on disk,
so we read the same config (``doveconf -n``) when we can, and otherwise fall back
to the names Debian's Dovecot marks plus ones other clients commonly create.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

SPECIAL_USE = {
    "\\all": "all",
    "\\archive": "archive",
    "\\drafts": "drafts",
    "\\flagged": "flagged",
    "\\important": "important",
    "\\junk": "junk",
    "\\sent": "sent",
    "\\trash": "trash",
}
FALLBACK = {
    "drafts": "drafts",
    "draft": "drafts",
    "sent": "sent",
    "sent messages": "sent",
    "sent items": "sent",
    "sent mail": "sent",
    "trash": "trash",
    "deleted messages": "trash",
    "deleted items": "trash",
    "junk": "junk",
    "spam": "junk",
    "junk e-mail": "junk",
    "archive": "archive",
    "archives": "archive",
}
_MAILBOX = re.compile(r'^\s*mailbox\s+("(?:[^"\\]|\\.)*"|\S+)\s*\{', re.M)
_SPECIAL = re.compile(r"^\s*special_use\s*=\s*(.+)$", re.M)


_AUTO = re.compile(r"^\s*auto\s*=\s*(\S+)\s*$", re.M)


def _mailbox_blocks(text: str) -> Iterator[tuple[str, str]]:
    """(mailbox name, the settings of its block) in ``doveconf -n`` output."""
    for match in _MAILBOX.finditer(text):
        raw = match.group(1)
        name = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\") if raw.startswith('"') else raw
        yield name, text[match.end() : text.find("}", match.end())]


def parse_doveconf(text: str) -> dict[str, str]:
    """Top-level folder name -> role from ``doveconf -n`` output (mailbox blocks of
    the namespaces; the first role claimed wins, as JMAP allows one per role)."""
    roles: dict[str, str] = {}
    for name, block in _mailbox_blocks(text):
        special = _SPECIAL.search(block)
        if not special:
            continue
        for attribute in special.group(1).split():
            role = SPECIAL_USE.get(attribute.lower())
            if role and role not in roles.values():
                roles[name] = role
                break
    return roles


def parse_autocreate(text: str) -> dict[str, bool]:
    """Mailbox name -> whether it is subscribed too, for the mailboxes Dovecot
    creates by itself (``auto = create`` or ``auto = subscribe``)."""
    wanted: dict[str, bool] = {}
    for name, block in _mailbox_blocks(text):
        auto = _AUTO.search(block)
        if auto and auto.group(1) in ("create", "subscribe"):
            wanted[name] = auto.group(1) == "subscribe"
    return wanted


@dataclass(frozen=True)
class DovecotMailboxes:
    """What Dovecot's config says about mailboxes: roles and autocreated ones."""

    roles: dict[str, str] | None = None
    """None: the config could not be read (the well-known names stand in)."""
    autocreate: dict[str, bool] = field(default_factory=dict)


def read_dovecot_mailboxes(config: Path | None = None) -> DovecotMailboxes:
    text = _doveconf(config)
    if text is None:
        return DovecotMailboxes()
    return DovecotMailboxes(parse_doveconf(text), parse_autocreate(text))


def read_dovecot_roles(config: Path | None = None) -> dict[str, str] | None:
    """Roles from the running Dovecot's config, or None when it cannot be read."""
    text = _doveconf(config)
    return parse_doveconf(text) if text is not None else None


def _doveconf(config: Path | None) -> str | None:
    """``doveconf -n`` (of ``config``, else doveconf's default), or None."""
    doveconf = shutil.which("doveconf")
    if doveconf is None:
        return None
    command = [doveconf, "-n"] + (["-c", str(config)] if config else [])
    try:
        result = subprocess.run(  # noqa: S603 (our own argv, no shell)
            command, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("cannot read Dovecot's config for mailbox roles (%s); using names", exc)
        return None
    return result.stdout


def role_for(levels: tuple[str, ...], configured: dict[str, str] | None) -> str | None:
    """The role a folder gets when first seen: only top-level folders have one."""
    if len(levels) != 1:
        return None
    if configured:
        return configured.get(levels[0])
    return FALLBACK.get(levels[0].lower())
