"""Logging in with Dovecot's own users: passwords through its auth-client socket,
the Maildir through its userdb (a real Dovecot from Debian's packages)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from maildir_jmap.config import Config
from maildir_jmap.core.capabilities import CORE, MAIL
from maildir_jmap.demo import create_demo_maildir
from maildir_jmap.dovecot_auth import (
    DovecotUsers,
    Passdb,
    Userdb,
    escape,
    unescape,
)
from maildir_jmap.dovecot_config import DovecotConfig, UnsupportedLocation, parse_mail_location
from maildir_jmap.http.app import create_app
from maildir_jmap.server.accounts import AccountPool, AccountUnavailable
from maildir_jmap.store.maildir import make_folder
from tests.conftest import LiveServer
from tests.dovecot import PASSWORD, USER, Dovecot, available
from tests.jmap_calls import invoke


@given(st.text())
def test_tab_escaping_round_trips(text: str) -> None:
    escaped = escape(text)
    assert not any(c in escaped for c in "\t\n\r\0")
    assert unescape(escaped) == text


@pytest.mark.parametrize(
    ("fields", "fallback", "expected"),
    [
        ({"home": "/home/a", "mail": "maildir:~/Maildir"}, None, "/home/a/Maildir"),
        ({"mail": "maildir:/var/vmail/%d/%n:LAYOUT=fs"}, None, "/var/vmail/example.org/a"),
        ({"home": "/home/a"}, "maildir:%h/mail", "/home/a/mail"),
        ({"home": "/home/a", "mail": "mdbox:~/mdbox"}, None, None),
        ({"mail": "maildir:~/Maildir"}, None, None),  # ~ without a home
        ({}, None, None),
    ],
)
def test_mail_locations_rfc_dovecot_templates(
    fields: dict[str, str], fallback: str | None, expected: str | None
) -> None:
    found = DovecotConfig().for_user({"user": "a@example.org", **fields}, fallback).maildir
    assert (str(found) if found else None) == expected


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[Dovecot]:
    reason = available()
    if reason:
        pytest.skip(reason)
    maildir = create_demo_maildir(tmp_path / "Maildir", user=USER)
    server = Dovecot(maildir, tmp_path / "dovecot").start()
    try:
        yield server
    finally:
        server.stop()


def dovecot_config(tmp_path: Path, dovecot: Dovecot) -> Config:
    run = dovecot.workdir / "run"
    return Config(
        state_dir=tmp_path / "state",
        watch=False,
        auth_backend="dovecot",
        dovecot_auth_socket=run / "auth-client",
        dovecot_userdb_socket=run / "auth-userdb",
        max_failures_per_user=1,
    )


def users_of(config: Config) -> DovecotUsers:
    return DovecotUsers(
        Passdb(config.dovecot_auth_socket), Userdb(config.dovecot_userdb_socket), None
    )


def test_a_dovecot_user_logs_in_and_gets_the_userdb_maildir(
    tmp_path: Path, dovecot: Dovecot
) -> None:
    config = dovecot_config(tmp_path, dovecot)
    with LiveServer(create_app(config, users_of(config))) as server:
        session = httpx.get(server.url + "/jmap/session", auth=(USER, PASSWORD))
        assert session.status_code == 200, session.text
        assert session.json()["username"] == USER
        account = session.json()["primaryAccounts"][MAIL]
        body = {
            "using": [CORE, MAIL],
            "methodCalls": [["Mailbox/get", {"accountId": account, "properties": ["name"]}, "0"]],
        }
        response = httpx.post(server.url + "/jmap/api/", json=body, auth=(USER, PASSWORD))
        names = {m["name"] for m in response.json()["methodResponses"][0][1]["list"]}
        # The demo Maildir the userdb points at, as IMAP lists it.
        imap = dovecot.imap()
        listed = {line.decode().rsplit(" ", 1)[-1].strip('"') for line in imap.list()[1]}
        imap.logout()
        assert "Inbox" in names
        assert {n for n in listed if n != "INBOX"} <= names | {n.split(".")[-1] for n in names}


@pytest.mark.parametrize(
    ("location", "layout", "refused"),
    [
        ("maildir:~/Maildir", None, None),
        ("maildir:/var/vmail/%d/%n:LAYOUT=fs", "fs", None),
        ("maildir:~/Maildir:INDEX=/var/index/%u:LAYOUT=maildir++", "maildir++", None),
        ("maildir:~/Maildir:VOLATILEDIR=/tmp/%u", None, None),
        ("maildir:~/Maildir:CONTROL=~/control", None, "dovecot-uidlist"),
        ("maildir:~/Maildir:UTF-8", None, "UTF-8"),
        ("maildir:~/Maildir:INBOX=/var/mail/%u", None, "INBOX"),
        ("maildir:~/Maildir:LAYOUT=index", None, "LAYOUT=index"),
        ("maildir:~/Maildir:SOMETHING=1", None, "unknown key"),
    ],
)
def test_mail_location_keys_are_honoured_or_refused_never_dropped(
    location: str, layout: str | None, refused: str | None
) -> None:
    """Issue 15: every key of a Dovecot mail location is understood: LAYOUT is
    followed, INDEX-like keys only move Dovecot's own files, and the rest (CONTROL
    above all: Dovecot's uidlist, keywords and their lock elsewhere) is refused."""
    if refused is None:
        assert parse_mail_location(location).layout == layout
    else:
        with pytest.raises(UnsupportedLocation, match=refused):
            parse_mail_location(location)


def test_a_refused_location_is_a_503_with_the_reason_not_a_wrong_password(
    tmp_path: Path,
) -> None:
    users = DovecotUsers(Passdb(tmp_path / "x"), Userdb(tmp_path / "y"))
    fields = {"user": "ann", "home": str(tmp_path), "mail": "maildir:~/M:CONTROL=~/c"}
    user = users._user("ann", fields)
    assert user is not None
    assert user.unusable is not None
    assert "CONTROL" in user.unusable
    pool = AccountPool(Config(state_dir=tmp_path / "state", watch=False), lambda u, a: None)
    with pytest.raises(AccountUnavailable, match="CONTROL"):
        pool.get(user)


def test_layout_fs_from_the_userdb_is_followed(tmp_path: Path) -> None:
    """With a real Dovecot whose userdb says maildir:...:LAYOUT=fs, a Maildir with no
    folders yet (detection would say Maildir++) gets fs folders from JMAP, and
    Dovecot lists them."""
    reason = available()
    if reason:
        pytest.skip(reason)
    root = tmp_path / "Maildir"
    make_folder(root, marker=False)
    dovecot = Dovecot(root, tmp_path / "dovecot", layout="fs").start()
    try:
        user = users_of(dovecot_config(tmp_path, dovecot)).get(USER)
        assert user is not None
        assert user.layout == "fs"
        pool = AccountPool(Config(state_dir=tmp_path / "state", watch=False), lambda u, a: None)
        account = pool.get(user)
        invoke(account, "Mailbox/set", create={"w": {"name": "Work"}})
        pool.close_all()
        assert (root / "Work" / "cur").is_dir()
        imap = dovecot.imap()
        listed = [line.decode() for line in imap.list()[1]]
        imap.logout()
        assert any(line.endswith(" Work") or line.endswith('"Work"') for line in listed)
    finally:
        dovecot.stop()


def test_the_home_is_the_userdbs_not_the_maildirs_parent(tmp_path: Path, dovecot: Dovecot) -> None:
    """Issue 15: {home} in the Sieve settings is Dovecot's home for the user (here
    the userdb's home= differs from the Maildir's parent, as with virtual users)."""
    user = users_of(dovecot_config(tmp_path, dovecot)).get(USER)
    assert user is not None
    assert user.home == dovecot.workdir / "home"
    assert user.home_dir() != user.maildir.parent


def test_a_wrong_password_fails_and_the_right_one_still_gets_in(
    tmp_path: Path, dovecot: Dovecot
) -> None:
    """Issue 17: a failure no longer locks the user out (it did with
    max_failures_per_user = 1): the next attempt from that address is held
    (Dovecot's auth penalty shape: 2 s after one failure), then checked."""
    config = dovecot_config(tmp_path, dovecot)
    with LiveServer(create_app(config, users_of(config))) as server:
        wrong = httpx.get(server.url + "/jmap/session", auth=(USER, "not-it"), timeout=30)
        assert wrong.status_code == 401
        started = time.monotonic()
        right = httpx.get(server.url + "/jmap/session", auth=(USER, PASSWORD), timeout=30)
        assert right.status_code == 200
        assert time.monotonic() - started > 1  # held by the address's penalty
        unknown = httpx.get(server.url + "/jmap/session", auth=("mallory", "x"), timeout=30)
        assert unknown.status_code == 401


def test_dovecot_down_is_503_not_401(tmp_path: Path) -> None:
    config = Config(
        state_dir=tmp_path / "state",
        watch=False,
        auth_backend="dovecot",
        dovecot_auth_socket=tmp_path / "no-such-socket",
        dovecot_userdb_socket=tmp_path / "no-such-socket",
    )
    with LiveServer(create_app(config, users_of(config))) as server:
        response = httpx.get(server.url + "/jmap/session", auth=(USER, PASSWORD))
        assert response.status_code == 503
        assert response.headers["retry-after"]
        # Issue 17: readiness says why; liveness stays up.
        ready = httpx.get(server.url + "/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["auth"].startswith("Dovecot's auth does not answer")
        assert httpx.get(server.url + "/healthz").status_code == 200


def test_ready_when_dovecots_auth_answers(tmp_path: Path, dovecot: Dovecot) -> None:
    config = dovecot_config(tmp_path, dovecot)
    with LiveServer(create_app(config, users_of(config))) as server:
        ready = httpx.get(server.url + "/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"auth": "ok", "state": "ok", "accounts": "ok"},
    }


def test_with_our_throttle_off_dovecots_auth_penalty_holds_the_address(
    tmp_path: Path, dovecot: Dovecot
) -> None:
    """Issue 17, the other side: ``auth.throttle = false`` leaves throttling to
    Dovecot. Its auth penalty sees the client's address (our ``rip``, from
    X-Forwarded-For through a trusted proxy) and holds that address's next
    attempt; ``doveadm penalty`` shows it. Another address is not held."""
    import dataclasses
    import subprocess

    config = dataclasses.replace(
        dovecot_config(tmp_path, dovecot), throttle_logins=False, trusted_proxies=("127.0.0.1",)
    )
    guesser, owner = {"X-Forwarded-For": "203.0.113.5"}, {"X-Forwarded-For": "198.51.100.7"}
    url = "/jmap/session"
    with LiveServer(create_app(config, users_of(config))) as server:
        wrong = httpx.get(server.url + url, auth=(USER, "x0"), headers=guesser, timeout=60)
        assert wrong.status_code == 401
        started = time.monotonic()
        mine = httpx.get(server.url + url, auth=(USER, PASSWORD), headers=owner, timeout=60)
        assert mine.status_code == 200
        assert time.monotonic() - started < 1.5
        started = time.monotonic()
        held = httpx.get(server.url + url, auth=(USER, "x9"), headers=guesser, timeout=60)
        assert held.status_code == 401
        assert time.monotonic() - started > 1.5  # Dovecot's hold, not ours
    penalty = subprocess.run(
        ["doveadm", "-c", str(dovecot.conf), "penalty"], capture_output=True, text=True
    )
    assert "203.0.113.5" in penalty.stdout, penalty.stdout + penalty.stderr


def test_dovecots_answers_are_remembered_not_guessed(tmp_path: Path, dovecot: Dovecot) -> None:
    """The event loop's check (``remembered``): only a password Dovecot's passdb
    accepted, for a user its userdb answered for; a wrong one never."""
    users = users_of(dovecot_config(tmp_path, dovecot))
    assert users.remembered(USER, PASSWORD) is None
    assert users.verify(USER, "not-it", "127.0.0.1", True) is None
    assert users.remembered(USER, "not-it") is None
    verified = users.verify(USER, PASSWORD, "127.0.0.1", True)
    assert verified is not None
    remembered = users.remembered(USER, PASSWORD)
    assert remembered is not None
    assert remembered.maildir == verified.maildir
    users.refresh(force=True)  # a reload: the userdb is asked afresh
    assert users.remembered(USER, PASSWORD) is None
