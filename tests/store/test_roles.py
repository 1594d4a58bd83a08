"""Mailbox roles from Dovecot's config or from well-known names (MAILDIR.md §1, §8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from maildir_jmap import dovecot_config
from maildir_jmap.store.roles import role_for
from tests.dovecot import Dovecot, available

DOVECONF = r"""
namespace inbox {
  inbox = yes
  location =
  mailbox Drafts {
    special_use = \Drafts
  }
  mailbox "Sent Messages" {
    special_use = \Sent
  }
  mailbox Sent {
    special_use = \Sent
  }
  mailbox Papierkorb {
    special_use = \Trash
  }
  mailbox Everything {
    auto = no
    special_use = \All \Flagged
  }
  prefix =
}
"""


def roles_in(text: str) -> dict[str, str] | None:
    return dovecot_config.DovecotConfig.from_text(text).namespace.mailboxes.roles


def test_parse_doveconf_first_claim_wins() -> None:
    assert roles_in(DOVECONF) == {
        "Drafts": "drafts",
        "Sent Messages": "sent",
        "Papierkorb": "trash",
        "Everything": "all",
    }


def test_roles_only_for_top_level_folders() -> None:
    roles = {"Papierkorb": "trash"}
    assert role_for(("Papierkorb",), roles) == "trash"
    assert role_for(("Trash",), roles) is None  # configured roles replace the names
    assert role_for(("Trash",), None) == "trash"
    assert role_for(("Sent Items",), None) == "sent"
    assert role_for(("Spam",), None) == "junk"
    assert role_for(("Archive", "Trash"), None) is None


@pytest.mark.skipif(available() is not None, reason=str(available()))
def test_roles_read_from_a_real_dovecot_config(tmp_path: Path) -> None:
    dovecot = Dovecot(tmp_path / "Maildir", tmp_path / "dc")
    dovecot.maildir.mkdir()
    dovecot._write_config()
    config = dovecot_config.read(dovecot.conf)
    assert config is not None
    roles = config.namespace.mailboxes.roles
    assert roles == {"Drafts": "drafts", "Junk": "junk", "Trash": "trash", "Sent": "sent"}


def test_autocreate_mailboxes_from_doveconf_output() -> None:
    """Dovecot's ``auto`` setting of namespace mailbox blocks (create, subscribe;
    no is the default and means nothing)."""
    text = (
        "namespace inbox {\n  inbox = yes\n"
        '  mailbox "Sent Items" {\n    auto = subscribe\n    special_use = \\Sent\n  }\n'
        "  mailbox Junk {\n    auto = create\n  }\n"
        "  mailbox Trash {\n    auto = no\n  }\n}\n"
    )
    mailboxes = dovecot_config.DovecotConfig.from_text(text).namespace.mailboxes
    assert mailboxes.autocreate == {"Sent Items": True, "Junk": False}
