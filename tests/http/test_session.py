"""The Session resource over HTTP (RFC 8620 §2, §2.2)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest

from maildir_jmap.cli import main
from maildir_jmap.config import Config
from maildir_jmap.core.capabilities import CORE, MAIL, SUBMISSION, WEBSOCKET
from maildir_jmap.http.app import create_app
from maildir_jmap.server.push import WEBPUSH_VAPID
from maildir_jmap.store.account import Account
from maildir_jmap.store.maildir import make_folder
from maildir_jmap.users import UserDirectory
from tests.conftest import AppFactory, client_for


async def test_well_known_and_session_url_serve_the_same_session_rfc8620_2_2(
    client: httpx.AsyncClient,
) -> None:
    a = await client.get("/.well-known/jmap")
    b = await client.get("/jmap/session")
    assert a.status_code == b.status_code == 200
    assert a.json() == b.json()
    assert "no-store" in a.headers["cache-control"]  # §2: avoid HTTP caching


async def test_session_shape_rfc8620_2(client: httpx.AsyncClient) -> None:
    session = (await client.get("/jmap/session")).json()
    assert set(session) >= {
        "capabilities",
        "accounts",
        "primaryAccounts",
        "username",
        "apiUrl",
        "downloadUrl",
        "uploadUrl",
        "eventSourceUrl",
        "state",
    }
    assert session["username"] == "alice"
    assert session["apiUrl"] == "http://jmap.test/jmap/api/"
    assert CORE in session["capabilities"]
    (account,) = session["accounts"].values()
    assert account["name"] == "alice"
    assert account["isPersonal"] is True
    assert account["isReadOnly"] is False


async def test_urls_and_state_follow_the_host_each_request_names_rfc8620_2(
    client: httpx.AsyncClient,
) -> None:
    """The Session's URLs come from the request's Host (or, without one, the
    server's address): each base has its own Session state, kept per base."""
    plain = (await client.get("/jmap/session")).json()
    other = (await client.get("/jmap/session", headers={"Host": "mail.example:8443"})).json()
    again = (await client.get("/jmap/session", headers={"Host": "mail.example:8443"})).json()
    assert other["apiUrl"] == "http://mail.example:8443/jmap/api/"
    assert other["capabilities"][WEBSOCKET]["url"] == "ws://mail.example:8443/jmap/ws/"
    assert other["state"] == again["state"] != plain["state"]
    api = await client.post(
        "/jmap/api/",
        headers={"Host": "mail.example:8443"},
        json={"using": [CORE], "methodCalls": [["Core/echo", {}, "c"]]},
    )
    assert api.json()["sessionState"] == other["state"]  # §3.4


def test_base_url_without_a_host_header_is_the_servers_address() -> None:
    from starlette.requests import Request

    from maildir_jmap.http.api import base_url

    class NoPublicUrl:
        class config:
            public_url = None

    def request(server: tuple[str, int], scheme: str = "http") -> Request:
        scope = {"type": "http", "scheme": scheme, "server": server, "headers": [],
                 "path": "/jmap/session", "root_path": "/mail"}  # fmt: skip
        return Request(scope)

    server: Any = NoPublicUrl()
    assert base_url(request(("10.0.0.2", 80)), server) == "http://10.0.0.2/mail"
    assert base_url(request(("10.0.0.2", 8080)), server) == "http://10.0.0.2:8080/mail"
    assert base_url(request(("10.0.0.2", 443), "wss"), server) == "https://10.0.0.2/mail"


async def test_only_working_capabilities_are_advertised(client: httpx.AsyncClient) -> None:
    session = (await client.get("/jmap/session")).json()
    # Vacation needs a Sieve location in the config: not advertised without one.
    assert sorted(session["capabilities"]) == [CORE, MAIL, SUBMISSION, WEBPUSH_VAPID, WEBSOCKET]
    # RFC 9749 §3: the VAPID public key, an uncompressed P-256 point in base64url.
    key = session["capabilities"][WEBPUSH_VAPID]["applicationServerKey"]
    assert len(base64.urlsafe_b64decode(key + "=")) == 65
    assert session["capabilities"][MAIL] == {}  # RFC 8621 §1.3.1
    (account_id,) = session["accounts"]
    assert session["primaryAccounts"][MAIL] == account_id
    mail = session["accounts"][account_id]["accountCapabilities"][MAIL]
    assert mail["maxMailboxesPerEmail"] is None
    assert mail["maxSizeAttachmentsPerEmail"] == 50_000_000
    assert "receivedAt" in mail["emailQuerySortOptions"]
    assert mail["mayCreateTopLevelMailbox"] is True
    assert session["capabilities"][WEBSOCKET] == {
        "url": "ws://jmap.test/jmap/ws/",
        "supportsPush": True,
    }  # RFC 8887 §3


async def test_public_url_overrides_request_host(make_app: AppFactory, tmp_path: Any) -> None:
    config = Config(
        state_dir=tmp_path / "s", watch=False, public_url="https://mail.example.org/base"
    )
    async with client_for(make_app(config=config)) as client:
        session = (await client.get("/jmap/session")).json()
    assert session["apiUrl"] == "https://mail.example.org/base/jmap/api/"


async def test_read_only_maildir_is_a_read_only_account_rfc8620_2(
    make_app: AppFactory, users: Any
) -> None:
    alice = users.get("alice")
    alice.maildir.chmod(0o555)
    try:
        import os

        if os.access(alice.maildir, os.W_OK):  # root can write anyway
            return
        async with client_for(make_app()) as client:
            session = (await client.get("/jmap/session")).json()
        (account,) = session["accounts"].values()
        assert account["isReadOnly"] is True
    finally:
        alice.maildir.chmod(0o755)


async def test_forwarded_headers_only_from_trusted_proxies(
    make_app: AppFactory, tmp_path: Any
) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "mail.example.org"}
    trusted = Config(state_dir=tmp_path / "s1", watch=False, trusted_proxies=("127.0.0.0/8",))
    async with client_for(make_app(config=trusted)) as client:
        session = (await client.get("/jmap/session", headers=forwarded)).json()
        assert session["apiUrl"] == "https://mail.example.org/jmap/api/"
        websocket = session["capabilities"][WEBSOCKET]["url"]
        assert websocket == "wss://mail.example.org/jmap/ws/"
    untrusted = Config(state_dir=tmp_path / "s2", watch=False, trusted_proxies=("10.0.0.1",))
    async with client_for(make_app(config=untrusted)) as client:
        session = (await client.get("/jmap/session", headers=forwarded)).json()
        assert session["apiUrl"] == "http://jmap.test/jmap/api/"


async def test_forwarded_host_and_proto_are_ignored_when_public_url_is_set(
    make_app: AppFactory, tmp_path: Any
) -> None:
    """Issue 17: with public_url the admin said where clients reach us; a proxy's
    (or a client's, through a proxy that passes it on) -Host changes nothing,
    but -For still names the client."""
    config = Config(
        state_dir=tmp_path / "s",
        watch=False,
        trusted_proxies=("127.0.0.0/8",),
        public_url="https://jmap.example.org",
    )
    app = make_app(config=config)
    forwarded = {
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-For": "203.0.113.9",
    }
    async with client_for(app) as client:
        session = (await client.get("/jmap/session", headers=forwarded)).json()
        await client.get("/jmap/session", headers=forwarded, auth=("alice", "wrong"))
    assert session["apiUrl"] == "https://jmap.example.org/jmap/api/"
    assert session["capabilities"][WEBSOCKET]["url"] == "wss://jmap.example.org/jmap/ws/"
    throttle = app.state.server.login.throttle
    assert throttle.before("203.0.113.9") > 0  # the failure counted for the client
    assert throttle.before("127.0.0.1") == 0


def roles_seen(app: Any) -> dict[str, str | None]:
    server = app.state.server
    account = server.account(server.users.get("alice"))
    try:
        return {
            m.levels[-1] if m.levels else "INBOX": m.role for m in account.index.mailboxes.values()
        }
    finally:
        server.pool.close_all()


def test_roles_come_from_dovecots_special_use_for_serve_as_for_index(
    tmp_path: Path, users: UserDirectory
) -> None:
    """Issue 15: ``index`` took roles from doveconf and ``serve`` from folder names,
    so one Maildir got different roles depending on which ran first. Both read
    Dovecot's special_use (here a dovecot.conf of the test's own, through the real
    doveconf): Spam is Junk because Dovecot says so, Archive has no role because
    Dovecot gives it none, whatever the folders are called."""
    import shutil

    if shutil.which("doveconf") is None:
        pytest.skip("doveconf is not installed")
    conf = tmp_path / "dovecot.conf"
    conf.write_text(
        "namespace inbox {\n  inbox = yes\n"
        "  mailbox Spam {\n    special_use = \\Junk\n  }\n"
        "  mailbox Drafts {\n    special_use = \\Drafts\n  }\n"
        "  mailbox Receipts {\n    auto = subscribe\n  }\n"
        "  mailbox Later {\n    auto = create\n  }\n}\n"
    )
    alice = users.get("alice")
    assert alice is not None
    maildir = alice.maildir
    make_folder(maildir / ".Spam", marker=True)
    config = Config(state_dir=tmp_path / "state", watch=False, dovecot_config=conf)
    roles = roles_seen(create_app(config, users))
    assert roles["Spam"] == "junk"
    assert roles["Drafts"] == "drafts"
    assert roles["Archive"] is None
    # Issue 15: what Dovecot autocreates is in JMAP too, on disk as Dovecot makes it.
    assert "Receipts" in roles
    assert "Later" in roles
    assert (maildir / ".Receipts" / "cur").is_dir()
    assert (maildir / ".Later" / "maildirfolder").exists()
    subscriptions = (maildir / "subscriptions").read_text()
    assert "Receipts\n" in subscriptions
    assert "Later\n" not in subscriptions
    state = ["--state-dir", str(tmp_path / "index-state"), "--dovecot-config", str(conf)]
    assert main(["index", str(maildir), "--user", "alice", *state]) == 0
    again = Account.open("alice", maildir, tmp_path / "index-state", scan=False)
    by_name = {
        m.levels[-1] if m.levels else "INBOX": m.role for m in again.index.mailboxes.values()
    }
    again.close()
    assert by_name["Spam"] == "junk"
    assert by_name["Archive"] is None
