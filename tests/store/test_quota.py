"""Dovecot's quota rules and maildirsize (store/quota_rules.py, store/quota.py),
checked against the forms Dovecot's quota-util.c and quota-maildir.c accept and
write. The reference deployment (tests/test_deployment.py) checks them against a
running Dovecot."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from maildir_jmap.store.account import Account
from maildir_jmap.store.maildir import deliver, make_folder
from maildir_jmap.store.quota import MAILDIRSIZE, OverQuota, Quota, read_maildirsize
from maildir_jmap.store.quota_rules import (
    QuotaConfigError,
    QuotaSettings,
    parse_rule,
    wildcard_match,
)


def test_rule_units_follow_dovecot_storage_is_kilobytes() -> None:
    assert parse_rule("*:storage=60").bytes == 60 * 1024
    assert parse_rule("*:storage=60K").bytes == 60 * 1024
    assert parse_rule("*:storage=2M:messages=10").bytes == 2 << 20
    assert parse_rule("*:storage=2M:messages=10").messages == 10
    assert parse_rule("*:bytes=1000").bytes == 1000
    assert parse_rule("Trash:storage=+100M").bytes == 100 << 20
    assert parse_rule("Trash:storage=10%").bytes_percent == 10
    assert parse_rule("Trash:ignore").ignore
    assert parse_rule("inbox:storage=+1M").mask == "INBOX"


@pytest.mark.parametrize(
    "bad", ["*", "*:storage=x", "*:storage=+1M", "*:storage=10%", "*:size=1", "*:storage=1Q"]
)
def test_rules_dovecot_refuses_are_refused(bad: str) -> None:
    with pytest.raises(QuotaConfigError):
        parse_rule(bad)


def test_settings_from_plugin_userdb_override_wins() -> None:
    plugin = {
        "quota": "count:User quota",
        "quota_rule": "*:storage=10M",
        "quota_rule2": "Trash:storage=+1M",
        "quota_rule3": "Spam:ignore",
        "quota_vsizes": "yes",
    }
    settings = QuotaSettings.from_plugin(plugin)
    assert settings is not None
    assert (settings.name, settings.backend, settings.bytes, settings.vsizes) == (
        "User quota", "count", 10 << 20, True,
    )  # fmt: skip
    assert settings.limits("INBOX") == (10 << 20, 0)
    assert settings.limits("Trash") == (11 << 20, 0)
    assert not settings.counted("Spam")
    assert settings.counted("Trash")
    bob = QuotaSettings.from_plugin({**plugin, "quota_rule": "*:storage=60K"})
    assert bob is not None
    assert bob.bytes == 60 * 1024
    assert QuotaSettings.from_plugin({}) is None
    with pytest.raises(QuotaConfigError):
        QuotaSettings.from_plugin({"quota": "dict:User quota::proxy::quota"})


def test_wildcards_are_dovecots() -> None:
    assert wildcard_match("Archive.2024", "Archive*")
    assert wildcard_match("Tras", "Tra?")
    assert not wildcard_match("Trash", "Tra?")
    assert not wildcard_match("a.b", "a[.]b")


def test_maildirsize_read_as_dovecot_reads_it(tmp_path: Path) -> None:
    path = tmp_path / MAILDIRSIZE
    limits = (81920, 0)
    assert read_maildirsize(path, limits, True) is None  # missing: recalculate
    path.write_text("81920S\n0 0\n21 1\n15021 1\n-21 -1\n")
    used = read_maildirsize(path, limits, True)
    assert used is not None
    assert (used.bytes, used.messages) == (15021, 1)
    assert read_maildirsize(path, (1024, 0), True) is None  # limits changed
    path.write_text("81920S\n0 0\n" + "1 1\n" * 2000)
    assert read_maildirsize(path, limits, True) is None  # too long: recalculate
    path.write_text("81920S\n90000 3\n")
    os.utime(path, (time.time() - 3600, time.time() - 3600))
    assert read_maildirsize(path, limits, True) is None  # over quota and stale
    path.write_text("81920S\n0 0\n-5 -1\n")
    assert read_maildirsize(path, limits, True) is None  # negative: broken


def _account(tmp_path: Path) -> Account:
    root = tmp_path / "Maildir"
    make_folder(root, marker=False)
    make_folder(root / ".Trash", marker=True)
    deliver(root, b"Subject: a\n\n" + b"x" * 1000 + b"\n")
    return Account.open("u", root, tmp_path / "state")


def test_maildir_backend_recalculates_then_appends(tmp_path: Path) -> None:
    account = _account(tmp_path)
    settings = QuotaSettings(backend="maildir", bytes=4000, forced=True)
    quota = Quota(settings, account.maildir)
    used = quota.usage(account.index)  # no maildirsize yet: summed from S=
    text = (account.maildir / MAILDIRSIZE).read_text()
    assert text == f"4000S\n{used.bytes} 1\n"
    rec = next(iter(account.index.emails.values()))
    quota.charge(account.index, [rec], [None])
    assert (account.maildir / MAILDIRSIZE).read_text().endswith(f"-{used.bytes} -1\n")
    assert quota.usage(account.index).messages == 0
    account.close()


def test_the_check_refuses_what_would_pass_the_limit(tmp_path: Path) -> None:
    account = _account(tmp_path)
    inbox = next(m.id for m in account.index.mailboxes.values() if m.levels == ())
    trash = next(m.id for m in account.index.mailboxes.values() if m.levels == ("Trash",))
    rules = (parse_rule("Trash:storage=+2K"),)
    quota = Quota(QuotaSettings(bytes=2500, rules=rules, vsizes=True), account.maildir)
    used = quota.usage(account.index)
    quota.check(account.index, 2500 - used.bytes, set(), {inbox})  # exactly at the limit
    with pytest.raises(OverQuota):
        quota.check(account.index, 2501 - used.bytes, set(), {inbox})
    quota.check(account.index, 2501 - used.bytes, set(), {trash})  # Trash has 2K more
    quota.check(account.index, 10_000, {inbox}, {trash})  # a move is never refused
    with pytest.raises(OverQuota):
        quota.check(account.index, 3600, {inbox}, {inbox, trash})  # a copy is
    account.close()
