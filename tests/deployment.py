"""The reference deployment: a Dovecot configured the way a self-hoster configures
one for virtual users, started privately in a temp directory.

- passwd-file virtual users of two domains, Maildirs under ``<tmp>/vmail/%d/%n``
  (``mail_location``, no ``mail=`` from the userdb), homes elsewhere
  (``<tmp>/home/%d/%n``, from the passwd-file), all owned by ``vmail`` (5000);
- quota with the ``count`` backend (``quota_vsizes = yes``), one user on the
  ``maildir`` backend through a userdb override, per-user ``quota_rule`` overrides;
- Pigeonhole with per-user ``sieve = file:~/sieve;active=~/.dovecot.sieve``;
- ``special_use`` mailboxes, ``auto = subscribe`` (Junk, Archive) and
  ``auto = create`` ones in the INBOX namespace;
- IMAP on a loopback port and LMTP on a Unix socket for delivery.

maildir-jmap is pointed at this Dovecot by its dovecot.conf alone (what a
self-hoster's default /etc/dovecot/dovecot.conf is); nothing else is copied.
Needs Debian's dovecot-core, -imapd, -lmtpd and -sieve, and root.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.dovecot import MAIL_GID, MAIL_UID, launch, open_ancestors, terminate
from tests.ports import free_port


@dataclass(frozen=True)
class VirtualUser:
    login: str
    password: str
    extra: str = ""
    """passwd-file extra fields (``userdb_quota_rule=...``)."""

    @property
    def local(self) -> str:
        return self.login.partition("@")[0]

    @property
    def domain(self) -> str:
        return self.login.partition("@")[2]


USERS = (
    VirtualUser("alice@example.org", "alice-pw"),
    VirtualUser("bob@example.org", "bob-pw", "userdb_quota_rule=*:storage=60K"),
    VirtualUser(
        "carol@example.net",
        "carol-pw",
        "userdb_quota=maildir:User_quota userdb_quota_rule=*:storage=80K",
    ),
    VirtualUser("dave@example.net", "dave-pw"),
)
"""bob has a 60 KB quota (count backend), carol 80 KB on the maildir backend;
alice and dave the default 10 MB, dave has never logged in (no Maildir)."""


def available() -> str | None:
    for program in ("dovecot", "doveconf", "doveadm"):
        if shutil.which(program) is None:
            return f"{program} is not installed (scripts/test installs Dovecot)"
    for part in ("imap", "lmtp"):
        if not Path("/usr/lib/dovecot", part).exists():
            return f"Dovecot's {part} is not installed (dovecot-{part}d)"
    if not Path("/usr/lib/dovecot/modules/lib90_sieve_plugin.so").exists():
        return "Pigeonhole is not installed (dovecot-sieve)"
    if os.geteuid() != 0:
        return "the deployment fixture runs as root (Dovecot's master needs it)"
    return None


class Deployment:
    def __init__(
        self,
        root: Path,
        *,
        listescape: bool = False,
        submission_port: int | None = None,
        routes: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.vmail = root / "vmail"
        self.homes = root / "home"
        self.etc = root / "etc"
        self.run = root / "run"
        self.conf = self.etc / "dovecot.conf"
        self.port = free_port()
        self.listescape = listescape
        self.submission_port = submission_port
        """Where Pigeonhole sends vacation replies (an SMTP server of the test's)."""
        self.pid: int | None = None
        self.routes = routes or {}
        """More passdb extra fields per login (``host=... port=...``, issue 20)."""

    def maildir(self, login: str) -> Path:
        local, _, domain = login.partition("@")
        return self.vmail / domain / local

    def home(self, login: str) -> Path:
        local, _, domain = login.partition("@")
        return self.homes / domain / local

    def password(self, login: str) -> str:
        return next(u.password for u in USERS if u.login == login)

    def reroute(self, login: str, fields: str) -> None:
        """Give ``login`` other passdb route fields; Dovecot re-reads the file."""
        self.routes[login] = fields
        self._write_passwd()

    def _write_passwd(self) -> None:
        lines = []
        for user in USERS:
            home = self.home(user.login)
            extra = " ".join(f for f in (user.extra, self.routes.get(user.login)) if f)
            lines.append(
                f"{user.login}:{{PLAIN}}{user.password}:{MAIL_UID}:{MAIL_GID}::{home}::{extra}"
            )
        passwd = self.etc / "passwd"
        passwd.write_text("\n".join(lines) + "\n")
        os.chmod(passwd, 0o644)

    def _write(self) -> None:
        for path in (self.etc, self.run, self.root / "state", self.vmail, self.homes):
            path.mkdir(parents=True, exist_ok=True)
        self._write_passwd()
        passwd = self.etc / "passwd"
        plugins = "quota" + (" listescape" if self.listescape else "")
        submission = (
            f"submission_host = 127.0.0.1:{self.submission_port}" if self.submission_port else ""
        )
        separator = "/" if self.listescape else "."
        self.conf.write_text(
            f"""# A virtual-user Dovecot as a self-hoster sets one up (tests/deployment.py).
instance_name = mj-deploy-{self.port}
base_dir = {self.run}
state_dir = {self.root}/state
log_path = {self.root}/dovecot.log
listen = 127.0.0.1
protocols = imap lmtp
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {MAIL_UID}
first_valid_gid = {MAIL_GID}
mail_uid = {MAIL_UID}
mail_gid = {MAIL_GID}
mail_location = maildir:{self.vmail}/%d/%n
mail_plugins = $mail_plugins {plugins}
{submission}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
namespace inbox {{
  inbox = yes
  separator = {separator}
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
  mailbox Archive {{
    special_use = \\Archive
    auto = create
  }}
}}
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
  mail_max_userip_connections = 200
}}
protocol lmtp {{
  mail_plugins = $mail_plugins sieve
  postmaster_address = postmaster@example.org
}}
plugin {{
  quota = count:User quota
  quota_vsizes = yes
  quota_rule = *:storage=10M
  quota_rule2 = Trash:storage=+1M
  sieve = file:~/sieve;active=~/.dovecot.sieve
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
}}
service auth {{
  unix_listener auth-userdb {{
    mode = 0666
  }}
}}
"""
        )

    def start(self) -> Deployment:
        self._write()
        for path in (self.vmail, self.homes):
            os.chown(path, MAIL_UID, MAIL_GID)
            for login in {u.domain for u in USERS}:
                (path / login).mkdir(exist_ok=True)
                os.chown(path / login, MAIL_UID, MAIL_GID)
        for user in USERS:
            home = self.home(user.login)
            home.mkdir(exist_ok=True)
            os.chown(home, MAIL_UID, MAIL_GID)
        open_ancestors(self.root)
        os.chmod(self.root, 0o755)
        self.pid = launch(self.conf, self.port, self.run, self.root / "dovecot.log")
        return self

    def stop(self) -> None:
        if self.pid is not None:
            terminate(self.pid)
        self.pid = None

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def imap(self, login: str) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.port)
        client.login(login, self.password(login))
        return client

    def lmtp(self, recipient: str, message: bytes, sender: str = "someone@example.com") -> str:
        """Deliver through Dovecot's LMTP (Sieve runs); the reply to DATA."""
        import smtplib

        client = smtplib.LMTP(str(self.run / "lmtp"))
        try:
            client.ehlo("test")
            client.mail(sender)
            code, reply = client.rcpt(recipient)
            if code >= 400:
                return f"{code} {reply.decode(errors='replace')}"
            code, reply = client.data(message)
            return f"{code} {reply.decode(errors='replace')}"
        except smtplib.SMTPDataError as exc:
            return f"{exc.smtp_code} {exc.smtp_error.decode(errors='replace')}"
        finally:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                client.quit()

    def doveadm(self, *args: str) -> str:
        result = subprocess.run(
            ["doveadm", "-c", str(self.conf), *args], check=True, capture_output=True, text=True
        )
        return result.stdout
