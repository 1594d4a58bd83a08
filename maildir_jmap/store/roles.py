"""Mailbox roles (RFC 8621 §2) from Dovecot's ``special_use`` config, else from names.

MAILDIR.md §1: Dovecot keeps special-use attributes in its config, not on disk, so
the INBOX namespace's ``mailbox`` sections (read by dovecot_config.py) give the
roles; without them, the names Debian's Dovecot marks plus ones other clients
commonly create stand in. The same sections say which mailboxes Dovecot creates
by itself (``auto = create`` or ``auto = subscribe``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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

Mailboxes = Mapping[str, Mapping[str, str]]
"""Mailbox name -> the settings of its ``mailbox`` section."""


def roles_of(mailboxes: Mailboxes) -> dict[str, str]:
    """Top-level folder name -> role (the first role claimed wins, as JMAP allows
    one Mailbox per role)."""
    roles: dict[str, str] = {}
    for name, settings in mailboxes.items():
        for attribute in settings.get("special_use", "").split():
            role = SPECIAL_USE.get(attribute.lower())
            if role and role not in roles.values():
                roles[name] = role
                break
    return roles


def autocreate_of(mailboxes: Mailboxes) -> dict[str, bool]:
    """Mailbox name -> whether it is subscribed too, for the mailboxes Dovecot
    creates by itself (``auto = create`` or ``auto = subscribe``)."""
    return {
        name: settings["auto"] == "subscribe"
        for name, settings in mailboxes.items()
        if settings.get("auto") in ("create", "subscribe")
    }


@dataclass(frozen=True)
class DovecotMailboxes:
    """What Dovecot's config says about mailboxes: roles and autocreated ones."""

    roles: dict[str, str] | None = None
    """None: the config could not be read (the well-known names stand in)."""
    autocreate: dict[str, bool] = field(default_factory=dict)


def role_for(levels: tuple[str, ...], configured: dict[str, str] | None) -> str | None:
    """The role a folder gets when first seen: only top-level folders have one."""
    if len(levels) != 1:
        return None
    if configured:
        return configured.get(levels[0])
    return FALLBACK.get(levels[0].lower())
