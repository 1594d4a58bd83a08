"""Dovecot's effective config as dovecot_config.py reads it: ``doveconf -n``
parsed, and what it means for one user (the reference deployment in
tests/test_deployment.py reads a real one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maildir_jmap.dovecot_config import DovecotConfig, expand, parse, sieve_location
from maildir_jmap.store.names import FS, MAILDIRPP, Layout
from maildir_jmap.store.sieve import SieveLocation

DOVECONF = r"""# 2.3.19.1 (9b53102964): /etc/dovecot/dovecot.conf
base_dir = /var/run/dovecot
mail_home = /srv/home/%d/%n
mail_location = maildir:/var/vmail/%d/%n:LAYOUT=fs:INDEX=/var/index/%u
mail_plugins = " quota listescape"
namespace inbox {
  inbox = yes
  mailbox "Sent Messages" {
    auto = subscribe
    special_use = \Sent
  }
  prefix =
  separator = /
}
plugin {
  listescape_char = "\\"
  quota = maildir:User quota
  quota_rule = *:storage=1G
  sieve = file:~/sieve;active=~/.dovecot.sieve
}
protocol lmtp {
  mail_plugins = " quota listescape sieve"
}
"""


def test_doveconf_sections_nest() -> None:
    root = parse(DOVECONF)
    inbox = root.first("namespace", "inbox")
    assert inbox is not None
    assert inbox.first("mailbox", "Sent Messages") is not None
    assert root.settings["mail_plugins"] == " quota listescape"


def test_what_the_config_means_for_a_virtual_user() -> None:
    config = DovecotConfig.from_text(DOVECONF)
    assert config.auth_client_socket == Path("/var/run/dovecot/auth-client")
    assert config.namespace.separator == "/"
    assert config.namespace.mailboxes.roles == {"Sent Messages": "sent"}
    assert config.namespace.mailboxes.autocreate == {"Sent Messages": True}
    assert "sieve" in config.delivery_plugins
    mail = config.for_user({"user": "alice@example.org", "quota_rule": "*:storage=5M"})
    assert mail.maildir == Path("/var/vmail/example.org/alice")
    assert mail.layout == "fs"
    assert mail.home == Path("/srv/home/example.org/alice")  # mail_home, not the parent
    assert mail.sieve == SieveLocation(
        Path("/srv/home/example.org/alice/sieve"),
        Path("/srv/home/example.org/alice/.dovecot.sieve"),
    )
    assert mail.quota is not None
    assert (mail.quota.backend, mail.quota.bytes) == ("maildir", 5 << 20)  # the userdb's
    assert mail.escape == "\\"


def test_refused_locations_and_quota_backends_make_the_user_unusable() -> None:
    config = DovecotConfig.from_text(DOVECONF)
    mail = config.for_user({"user": "a@b", "mail": "maildir:~/M:CONTROL=/c", "home": "/h"})
    assert mail.unusable is not None
    assert "CONTROL" in mail.unusable
    mail = config.for_user({"user": "a@b", "home": "/h", "quota": "fs:User quota"})
    assert mail.unusable is not None
    assert "fs" in mail.unusable


def test_variables_expand_as_dovecots() -> None:
    assert expand("/v/%d/%n", "Bob@Example.org", None) == "/v/Example.org/Bob"
    assert expand("/v/%Ld/%Ln", "Bob@Example.org", None) == "/v/example.org/bob"
    assert expand("%{home}/x", "b", "/h") == "/h/x"
    assert expand("~/sieve", "b", None) is None  # no home: no guess
    assert expand("/v/%r", "b", None) is None  # a variable we do not know


def test_older_sieve_settings() -> None:
    plugin = {"sieve": "~/.dovecot.sieve", "sieve_dir": "~/sieve"}
    assert sieve_location(plugin, "u", "/h") == SieveLocation(
        Path("/h/sieve"), Path("/h/.dovecot.sieve")
    )
    assert sieve_location({"sieve": "dict:proxy::sieve"}, "u", "/h") is None


NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12
).filter(lambda n: "/" not in n)


@pytest.mark.parametrize("layout", [MAILDIRPP, FS])
@given(levels=st.lists(NAMES, min_size=1, max_size=3))
def test_listescape_names_round_trip(layout: Layout, levels: list[str]) -> None:
    escaped = Layout(layout.name, layout.separator, "\\")
    directory = escaped.directory(tuple(levels))
    assert escaped.levels(directory) == tuple(levels)


def test_listescape_writes_what_dovecot_writes() -> None:
    escaped = Layout("maildir++", ".", "\\")
    assert escaped.directory(("v1.2",)) == ".v1\\2e2"
    assert escaped.directory(("~home", "a\\b")) == ".\\7ehome.a\\5cb"
