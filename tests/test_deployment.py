"""The reference deployment end to end (tests/deployment.py: a real Dovecot with
virtual users of two domains, quota, Pigeonhole, autocreate and LMTP), with
maildir-jmap configured by ``auth.backend = "dovecot"`` and Dovecot's dovecot.conf
alone: nothing copied from Dovecot's config by hand.

Real counterparts: Dovecot's auth and userdb, IMAP (LIST, APPEND, GETQUOTAROOT),
LMTP delivery running Pigeonhole, which sends its vacation replies to an aiosmtpd
server; our server runs in a real uvicorn and is driven over HTTP.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from maildir_jmap import serve
from maildir_jmap.config import Config
from maildir_jmap.core.capabilities import CORE, MAIL, QUOTA, VACATION
from maildir_jmap.http.app import create_app
from maildir_jmap.store.quota import MAILDIRSIZE
from maildir_jmap.users import Users
from tests.conftest import LiveServer
from tests.deployment import Deployment, available
from tests.dovecot import MAIL_UID
from tests.ports import free_port
from tests.smtp import SmtpHandler

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

USING = [CORE, MAIL, QUOTA, VACATION]


class Site:
    """A deployment, an SMTP server for Pigeonhole's replies, and our server."""

    def __init__(self, root: Path, *, listescape: bool = False) -> None:
        self.smtp = SmtpHandler()
        port = free_port()
        self.controller = Controller(self.smtp, hostname="127.0.0.1", port=port)
        self.controller.start()
        self.dovecot = Deployment(root / "site", listescape=listescape, submission_port=port)
        self.dovecot.start()
        # What a self-hoster writes: the backend, and where Dovecot's config is.
        self.config = Config(
            state_dir=root / "state", auth_backend="dovecot", dovecot_config=self.dovecot.conf
        )
        users: Users = serve.users_for(
            self.config, lambda: pytest.fail("not embedded"), _read(self.dovecot.conf)
        )
        self.server = LiveServer(create_app(self.config, users)).__enter__()

    def close(self) -> None:
        self.server.__exit__(None, None, None)
        self.dovecot.stop()
        self.controller.stop()

    def auth(self, login: str) -> tuple[str, str]:
        return login, self.dovecot.password(login)

    def session(self, login: str) -> dict[str, Any]:
        response = httpx.get(self.server.url + "/jmap/session", auth=self.auth(login))
        assert response.status_code == 200, response.text
        session: dict[str, Any] = response.json()
        return session

    def call(self, login: str, name: str, **args: Any) -> dict[str, Any]:
        account = self.session(login)["primaryAccounts"][MAIL]
        body = {"using": USING, "methodCalls": [[name, {"accountId": account, **args}, "0"]]}
        response = httpx.post(self.server.url + "/jmap/api/", json=body, auth=self.auth(login))
        assert response.status_code == 200, response.text
        ((method, result, _),) = response.json()["methodResponses"]
        assert method == name, result
        out: dict[str, Any] = result
        return out

    def upload(self, login: str, raw: bytes) -> str:
        session = self.session(login)
        account = session["primaryAccounts"][MAIL]
        url = session["uploadUrl"].replace("{accountId}", account)
        response = httpx.post(url, content=raw, auth=self.auth(login))
        assert response.status_code == 201, response.text
        blob: str = response.json()["blobId"]
        return blob

    def mailbox_ids(self, login: str) -> dict[str, str]:
        got = self.call(login, "Mailbox/get", ids=None)
        return {m["name"]: m["id"] for m in got["list"]}

    def import_message(self, login: str, raw: bytes) -> dict[str, Any]:
        inbox = self.mailbox_ids(login)["Inbox"]
        blob = self.upload(login, raw)
        return self.call(
            login, "Email/import", emails={"m": {"blobId": blob, "mailboxIds": {inbox: True}}}
        )


def _read(conf: Path) -> Any:
    from maildir_jmap import dovecot_config

    return dovecot_config.read(conf)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    running = Site(tmp_path_factory.mktemp("deployment"))
    try:
        yield running
    finally:
        running.close()


def message(subject: str, size: int, to: str = "someone@example.org") -> bytes:
    head = f"From: Sender <sender@example.com>\r\nTo: {to}\r\nSubject: {subject}\r\n"
    head += f"Message-ID: <{subject.replace(' ', '.')}.{time.time_ns()}@example.com>\r\n\r\n"
    line = b"x" * 70 + b"\r\n"
    return head.encode() + line * max(1, (size - len(head)) // len(line))


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def imap_list(site: Site, login: str) -> dict[str, set[str]]:
    """IMAP LIST of the user: name -> its attributes."""
    client = site.dovecot.imap(login)
    try:
        typ, lines = client.list()
        assert typ == "OK"
    finally:
        client.logout()
    found = {}
    for line in lines:
        assert isinstance(line, bytes)
        match = re.match(rb'\((.*?)\) "(.)" (.*)$', line)
        assert match, line
        name = match.group(3).decode().strip('"')
        found[name] = {a.lower() for a in match.group(1).decode().split()}
    return found


def imap_quota(site: Site, login: str) -> tuple[int, int]:
    """(STORAGE used, limit) in KiB, as GETQUOTAROOT INBOX reports them."""
    client = site.dovecot.imap(login)
    try:
        typ, data = client.getquotaroot("INBOX")
    finally:
        client.logout()
    assert typ == "OK", data
    text = b" ".join(x for part in data for x in part).decode()
    match = re.search(r"STORAGE (\d+) (\d+)", text)
    assert match, text
    return int(match.group(1)), int(match.group(2))


def imap_append(site: Site, login: str, raw: bytes) -> str:
    client = site.dovecot.imap(login)
    try:
        typ, data = client.append("INBOX", None, None, raw)
    finally:
        client.logout()
    return f"{typ} {data[0]!r}"


# -- logins, roles, autocreate ------------------------------------------------------


def test_dovecot_passwords_log_in_and_wrong_ones_do_not(site: Site) -> None:
    assert site.session("alice@example.org")["username"] == "alice@example.org"
    response = httpx.get(site.server.url + "/jmap/session", auth=("alice@example.org", "nope"))
    assert response.status_code == 401


def test_roles_and_autocreated_folders_are_what_imap_lists(site: Site) -> None:
    login = "alice@example.org"
    mailboxes = site.call(login, "Mailbox/get", ids=None)["list"]
    listed = imap_list(site, login)
    jmap = {m["name"]: m for m in mailboxes if m["role"] != "inbox"}
    assert set(jmap) == set(listed) - {"INBOX"}
    for name, attributes in listed.items():
        if name == "INBOX":
            continue
        special = {a.strip("\\") for a in attributes} & {
            "drafts", "sent", "trash", "junk", "archive",
        }  # fmt: skip
        assert {jmap[name]["role"]} == special, name
    # auto = subscribe ones are subscribed, auto = create ones are not.
    assert jmap["Junk"]["isSubscribed"]
    assert not jmap["Archive"]["isSubscribed"]


def test_a_user_who_never_logged_in_gets_a_maildir_as_dovecot_makes_one(site: Site) -> None:
    login = "dave@example.net"
    root = site.dovecot.maildir(login)
    assert not root.exists()
    names = set(site.mailbox_ids(login))
    assert root.is_dir()
    assert all((root / d).is_dir() for d in ("cur", "new", "tmp"))
    assert root.stat().st_uid == MAIL_UID  # the userdb's uid, not ours (root)
    assert {"Drafts", "Sent", "Trash", "Junk", "Archive"} <= names
    assert set(imap_list(site, login)) - {"INBOX"} == names - {"Inbox"}


# -- vacation through Pigeonhole ---------------------------------------------------------


def test_vacation_of_two_users_of_one_domain_each_answered_by_pigeonhole(site: Site) -> None:
    for login in ("alice@example.org", "bob@example.org"):
        result = site.call(
            login,
            "VacationResponse/set",
            update={"singleton": {"isEnabled": True, "subject": f"away: {login}"}},
        )
        assert result["updated"] == {"singleton": None}, result
    homes = [site.dovecot.home(u) for u in ("alice@example.org", "bob@example.org")]
    for home in homes:  # each in the user's own home, readable by the mail user
        assert (home / ".dovecot.sieve").is_symlink()
        assert (home / "sieve").stat().st_uid == MAIL_UID
    before = len(site.smtp.messages)
    for login in ("alice@example.org", "bob@example.org"):
        reply = site.dovecot.lmtp(
            login, message(f"hello {login}", 400, to=login), sender="friend@example.com"
        )
        assert reply.startswith("250"), reply
    replies = site.smtp.wait(before + 2)[before:]
    subjects = {m.group(1) for r in replies if (m := re.search(rb"Subject: (.*?)\r?\n", r.data))}
    assert subjects == {b"away: alice@example.org", b"away: bob@example.org"}
    assert all(r.rcpt_tos == ["friend@example.com"] for r in replies)


# -- quota -------------------------------------------------------------------------------


def quota_of(site: Site, login: str) -> dict[str, Any]:
    got = site.call(login, "Quota/get", ids=None)
    return {q["id"]: q for q in got["list"]}


def test_count_quota_refused_alike_by_imap_and_jmap_with_equal_usage(site: Site) -> None:
    login = "bob@example.org"  # 60 KiB, count backend
    first = site.import_message(login, message("first", 35_000))
    assert "m" in first["created"], first
    used = quota_of(site, login)["octets"]
    assert used["hardLimit"] == 60 * 1024
    assert imap_quota(site, login) == (math.ceil(used["used"] / 1024), 60)
    # A second 35 KB message passes the limit: IMAP and JMAP refuse it alike.
    assert "OVERQUOTA" in imap_append(site, login, message("by imap", 35_000))
    second = site.import_message(login, message("by jmap", 35_000))
    assert second["notCreated"]["m"]["type"] == "overQuota", second
    # A small one fits for both; JMAP counts what IMAP saved.
    assert imap_append(site, login, message("small imap", 2_000)).startswith("OK")
    wait_for(lambda: quota_of(site, login)["octets"]["used"] > used["used"] + 1_900)
    assert "m" in site.import_message(login, message("small jmap", 2_000))["created"]
    now = quota_of(site, login)["octets"]["used"]
    assert imap_quota(site, login)[0] == math.ceil(now / 1024)


def test_maildir_quota_keeps_maildirsize_as_dovecot_does(site: Site) -> None:
    login = "carol@example.net"  # 80 KiB, maildir backend
    assert imap_append(site, login, message("imap", 30_000)).startswith("OK")
    assert "m" in site.import_message(login, message("jmap", 30_000))["created"]
    lines = (site.dovecot.maildir(login) / MAILDIRSIZE).read_text().splitlines()
    assert lines[0] == f"{80 * 1024}S"
    total = sum(int(line.split()[0]) for line in lines[1:])
    used = quota_of(site, login)["octets"]["used"]
    assert used == total
    assert imap_quota(site, login) == (math.ceil(total / 1024), 80)
    assert "OVERQUOTA" in imap_append(site, login, message("imap 2", 30_000))
    refused = site.import_message(login, message("jmap 2", 30_000))
    assert refused["notCreated"]["m"]["type"] == "overQuota", refused
    # Destroying through JMAP gives the room back for IMAP too.
    emails = site.call(login, "Email/query")["ids"]
    site.call(login, "Email/set", destroy=emails[:1])
    assert imap_quota(site, login)[0] < math.ceil(total / 1024)
    assert imap_append(site, login, message("imap 3", 20_000)).startswith("OK")


def test_quota_changes_report_only_usage(site: Site) -> None:
    login = "alice@example.org"
    state = site.call(login, "Quota/get", ids=None)["state"]
    site.import_message(login, message("for changes", 3_000))
    changes = site.call(login, "Quota/changes", sinceState=state)
    assert changes["updated"] == ["octets"]
    assert changes["updatedProperties"] == ["used"]
    query = site.call(login, "Quota/query", filter={"resourceType": "octets"})
    assert query["ids"] == ["octets"]


# -- names with dots where Dovecot escapes them ---------------------------------------------


def test_a_dotted_name_is_refused_without_listescape(site: Site) -> None:
    result = site.call(
        "alice@example.org", "Mailbox/set", create={"n": {"name": "a.b", "parentId": None}}
    )
    assert result["notCreated"]["n"]["type"] == "invalidProperties", result


@pytest.fixture(scope="module")
def escaping_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    running = Site(tmp_path_factory.mktemp("listescape"), listescape=True)
    try:
        yield running
    finally:
        running.close()


def test_dotted_names_round_trip_with_listescape(escaping_site: Site) -> None:
    site = escaping_site
    login = "alice@example.org"
    created = site.call(login, "Mailbox/set", create={"n": {"name": "v1.2", "parentId": None}})
    assert "n" in created["created"], created
    assert (site.dovecot.maildir(login) / ".v1\\2e2").is_dir()  # Dovecot's own escape
    assert "v1.2" in imap_list(site, login)
    client = site.dovecot.imap(login)
    try:
        assert client.create('"release.notes"')[0] == "OK"
    finally:
        client.logout()
    wait_for(lambda: "release.notes" in site.mailbox_ids(login))
    assert os.path.isdir(site.dovecot.maildir(login) / ".release\\2enotes")


def test_check_prints_what_it_derived_from_dovecot(site: Site) -> None:
    from maildir_jmap.check import check

    lines = [m for ok, m in check(site.config, "carol@example.net") if ok]
    text = "\n".join(lines)
    assert f"Maildir {site.dovecot.maildir('carol@example.net')}" in text
    assert f"home {site.dovecot.home('carol@example.net')}" in text
    assert f"Sieve scripts in {site.dovecot.home('carol@example.net')}/sieve" in text
    assert f"quota 'User_quota' (maildir backend): {80 * 1024} octets" in text


def test_quota_usage_is_pushed_over_eventsource(site: Site) -> None:
    """RFC 9425 §6: a StateChange for Quota when usage moves."""
    login = "alice@example.org"
    session = site.session(login)
    account = session["primaryAccounts"][MAIL]
    before = site.call(login, "Quota/get", ids=None)["state"]
    url = session["eventSourceUrl"].replace("{types}", "Quota").replace("{closeafter}", "no")
    url = url.replace("{ping}", "0")
    pushed: list[str] = []
    client = httpx.Client(timeout=10)
    with client, client.stream("GET", url, auth=site.auth(login)) as stream:
        site.import_message(login, message("pushed", 2_000))
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            changed = json.loads(line[5:]).get("changed", {}).get(account, {})
            if changed.get("Quota", before) != before:
                pushed.append(changed["Quota"])
                break
    assert pushed == [site.call(login, "Quota/get", ids=None)["state"]]


def test_bad_quota_arguments_are_the_rfc_errors(site: Site) -> None:
    login = "alice@example.org"
    account = site.session(login)["primaryAccounts"][MAIL]
    calls = [
        ["Quota/query", {"accountId": account, "filter": {"size": 1}}, "a"],
        ["Quota/query", {"accountId": account, "filter": {"name": 7}}, "b"],
        ["Quota/query", {"accountId": account, "sort": [{"property": "hardLimit"}]}, "c"],
        ["Quota/changes", {"accountId": account, "sinceState": "../x"}, "d"],
        ["Quota/get", {"accountId": account, "ids": ["nope"]}, "e"],
    ]
    body = {"using": USING, "methodCalls": calls}
    response = httpx.post(site.server.url + "/jmap/api/", json=body, auth=site.auth(login))
    assert response.status_code == 200
    answers = {tag: (name, args) for name, args, tag in response.json()["methodResponses"]}
    assert answers["a"][1]["type"] == "unsupportedFilter"
    assert answers["b"][1]["type"] == "invalidArguments"
    assert answers["c"][1]["type"] == "unsupportedSort"
    assert answers["d"][1]["type"] == "cannotCalculateChanges"
    assert answers["e"][1]["notFound"] == ["nope"]
