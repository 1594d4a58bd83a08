"""A private Dovecot IMAP server on loopback over a test's Maildir.

Dovecot never accesses mail as root, so when the tests run as root the Maildir is
handed to uid/gid 5000 (a "vmail" user, as on many real systems); our own code
then creates files owned like their folder, which is exactly what a root-run
server must do (MAILDIR.md §7). Needs Debian's dovecot-core and dovecot-imapd.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.ports import free_port

MAIL_UID = MAIL_GID = 5000
USER, PASSWORD = "alice", "secret"


def available() -> str | None:
    """None when a Dovecot can be started here, else why not."""
    if shutil.which("dovecot") is None or not Path("/usr/lib/dovecot/imap").exists():
        return "Dovecot is not installed (scripts/test installs dovecot-imapd)"
    if os.geteuid() != 0:
        return "the Dovecot fixture runs as root (Dovecot's master needs it)"
    return None


def open_ancestors(path: Path) -> None:
    """Let Dovecot's unprivileged processes traverse to ``path`` (pytest's and
    mkdtemp's directories are 0700)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            os.chmod(parent, (mode & 0o7777) | 0o011)


def chown_tree(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.chown(os.path.join(dirpath, name), MAIL_UID, MAIL_GID, follow_symlinks=False)
    os.chown(root, MAIL_UID, MAIL_GID)


def launch(conf: Path, port: int, run: Path, log: Path) -> int:
    """Start Dovecot's master with ``conf``; its pid once IMAP greets on ``port``."""
    subprocess.run(["dovecot", "-c", str(conf)], check=True)
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(4).startswith(b"* OK"):
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            text = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"Dovecot did not start:\n{text[-2000:]}")
        time.sleep(0.05)
    return int((run / "master.pid").read_text())


def terminate(pid: int) -> None:
    """SIGTERM the master, SIGKILL after ten seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


class Dovecot:
    def __init__(self, maildir: Path, workdir: Path, layout: str = "maildir++") -> None:
        self.maildir = maildir
        self.workdir = workdir
        self.layout = layout
        self.port = free_port()
        self.conf = workdir / "dovecot.conf"
        self.pid: int | None = None

    def _write_config(self) -> None:
        run = self.workdir / "run"
        for path in (run, self.workdir / "home", self.workdir / "state"):
            path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        passwd = self.workdir / "passwd"
        passwd.write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
        os.chmod(passwd, 0o644)
        layout = ":LAYOUT=fs" if self.layout == "fs" else ""
        self.conf.write_text(
            f"""
instance_name = mj-test-{self.port}
base_dir = {run}
state_dir = {self.workdir}/state
log_path = {self.workdir}/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
first_valid_gid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = static
  args = uid={MAIL_UID} gid={MAIL_GID} home={self.workdir}/home mail=maildir:{self.maildir}{layout}
}}
namespace inbox {{
  inbox = yes
  mailbox Drafts {{
    special_use = \\Drafts
  }}
  mailbox Junk {{
    special_use = \\Junk
  }}
  mailbox Trash {{
    special_use = \\Trash
  }}
  mailbox Sent {{
    special_use = \\Sent
  }}
}}
protocol imap {{
  mail_max_userip_connections = 200
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
"""
        )

    def start(self) -> Dovecot:
        self.maildir.mkdir(parents=True, exist_ok=True)
        chown_tree(self.maildir)
        self._write_config()
        open_ancestors(self.maildir)
        open_ancestors(self.workdir)
        self.pid = launch(self.conf, self.port, self.workdir / "run", self.workdir / "dovecot.log")
        return self

    def stop(self) -> None:
        if self.pid is not None:
            terminate(self.pid)
        self.pid = None

    def imap(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.port)
        client.login(USER, PASSWORD)
        return client

    def doveadm(self, *args: str) -> str:
        result = subprocess.run(
            ["doveadm", "-c", str(self.conf), *args], check=True, capture_output=True, text=True
        )
        return result.stdout
