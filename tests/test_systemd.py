"""The service as systemd runs it: the unit file verifies, and ``serve --config``
speaks the notify protocol (READY=1 once it answers, STOPPING=1 on SIGTERM)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from maildir_jmap.demo import create_demo_maildir
from maildir_jmap.users import User, hash_password, save_users_file
from tests.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "maildir-jmap.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed")
def test_unit_file_verifies(tmp_path: Path) -> None:
    # The unit names the install location; point it at this checkout's entry point.
    executable = shutil.which("maildir-jmap") or str(Path(sys.executable).parent / "maildir-jmap")
    unit = tmp_path / "maildir-jmap.service"
    unit.write_text(UNIT.read_text().replace("/opt/maildir-jmap/bin/maildir-jmap", executable))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr
    text = UNIT.read_text()
    for line in ("Type=notify", "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes"):
        assert line in text


HARDENING = (
    "ExecReload=/bin/kill -HUP $MAINPID",
    "SystemCallFilter=@system-service",
    "ProtectProc=invisible",
    "ProcSubset=pid",
    "MemoryDenyWriteExecute=yes",
    "RemoveIPC=yes",
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed")
def test_unit_is_hardened_and_scores_ok_in_systemd_analyze_security(tmp_path: Path) -> None:
    """Issue 17: the shipped unit's exposure, as systemd itself rates it (3.2 before
    the hardening of this issue; lower is better)."""
    text = UNIT.read_text()
    for line in HARDENING:
        assert line in text.splitlines(), line
    executable = shutil.which("maildir-jmap") or str(Path(sys.executable).parent / "maildir-jmap")
    unit = tmp_path / "maildir-jmap.service"
    unit.write_text(text.replace("/opt/maildir-jmap/bin/maildir-jmap", executable))
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    score = done.stdout.strip().splitlines()[-1]
    assert "Overall exposure level" in score, done.stdout + done.stderr
    assert float(score.split(":")[1].split()[0]) <= 2.5, score


def test_the_units_documentation_is_installed_with_the_package(tmp_path: Path) -> None:
    """Documentation= names a file a plain ``pip install`` into /opt/maildir-jmap
    puts there (the wheel's data files), not one that never exists."""
    import zipfile

    (line,) = [x for x in UNIT.read_text().splitlines() if x.startswith("Documentation=")]
    installed = line.removeprefix("Documentation=file:///opt/maildir-jmap/")
    assert installed != line
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("maildir_jmap-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    data = [n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n]
    assert installed in data
    for shipped in ("nginx.conf", "maildir-jmap-proxy.conf", "maildir-jmap.service"):
        assert f"share/doc/maildir-jmap/{shipped}" in data


class Served:
    """A ``serve --config`` process: its port, the notify socket systemd would
    hold, and what it printed so far (stdout and stderr, as the journal gets)."""

    def __init__(self, port: int, notifications: socket.socket, process: subprocess.Popen[str]):
        self.port = port
        self.notifications = notifications
        self.process = process
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if text in line:
                    return line
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not logged; got:\n" + "\n".join(self.lines))

    def __iter__(self) -> Iterator[object]:  # (port, notifications), as before
        return iter((self.port, self.notifications))


@contextlib.contextmanager
def served(
    tmp_path: Path, server_settings: str = "", env: dict[str, str] | None = None
) -> Iterator[Served]:
    """``maildir-jmap serve --config`` under a notify socket the test listens on;
    stops the server afterwards."""
    maildir = create_demo_maildir(tmp_path / "Maildir", user="alice")
    users = tmp_path / "users.toml"
    save_users_file(users, {"alice": User("alice", maildir, hash_password("pw"))})
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[server]\nport = {port}\nstate_dir = "{tmp_path / "state"}"\n{server_settings}'
        f'[auth]\nusers_file = "{users}"\n[mail]\nwatch = false\n'
    )
    notify = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify))
    listener.settimeout(60)
    process = subprocess.Popen(
        [sys.executable, "-m", "maildir_jmap", "serve", "--config", str(config)],
        env={**os.environ, "NOTIFY_SOCKET": str(notify), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield Served(port, listener, process)
        # uvicorn shuts down gracefully, then re-raises SIGTERM: systemd counts
        # death by its own stop signal as a clean exit.
        process.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in listener.recv(4096).decode().splitlines():
            pass
        assert process.wait(30) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        listener.close()


def test_serve_notifies_readiness_and_stopping(tmp_path: Path) -> None:
    with served(tmp_path) as (port, notifications):
        assert "READY=1" in notifications.recv(4096).decode().splitlines()
        # Ready means serving: the first request after READY=1 is answered.
        session = httpx.get(f"http://127.0.0.1:{port}/jmap/session", auth=("alice", "pw"))
        assert session.status_code == 200


def test_serves_https_directly_with_a_configured_certificate(tmp_path: Path) -> None:
    from tests.tls import self_signed

    self_signed(tmp_path)  # writes cert.pem and key.pem
    tls = f'tls_cert = "{tmp_path / "cert.pem"}"\ntls_key = "{tmp_path / "key.pem"}"\n'
    with served(tmp_path, tls) as (port, notifications):
        assert "READY=1" in notifications.recv(4096).decode().splitlines()
        with httpx.Client(verify=False) as client:  # our self-signed test certificate
            session = client.get(f"https://127.0.0.1:{port}/jmap/session", auth=("alice", "pw"))
        assert session.status_code == 200
        # Session URLs follow the scheme the client used.
        assert session.json()["apiUrl"] == f"https://127.0.0.1:{port}/jmap/api/"


def test_every_journal_line_carries_its_priority_and_no_password(tmp_path: Path) -> None:
    """Issue 17: under systemd (JOURNAL_STREAM set) every line, uvicorn's own
    included, starts with a <priority> so journald files it at its level; the
    generated embedded-mode password is never written there."""
    with served(tmp_path, env={"JOURNAL_STREAM": "8:1234"}) as server:
        assert "READY=1" in server.notifications.recv(4096).decode().splitlines()
        httpx.get(f"http://127.0.0.1:{server.port}/jmap/session", auth=("alice", "pw"))
        access = server.wait_for('"GET /jmap/session HTTP/1.1" 200')
    assert access.startswith("<6>uvicorn.access: ")
    logged = [line for line in server.lines if line and not line.startswith("maildir-jmap: ")]
    assert logged
    assert all(line[:3] in ("<7>", "<6>", "<4>", "<3>") for line in logged), logged


def test_a_start_failure_is_an_error_in_the_journal(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = subprocess.run(
            [sys.executable, "-m", "maildir_jmap", "serve", "--port", str(port)],
            env={**os.environ, "JOURNAL_STREAM": "8:1234", "HOME": str(tmp_path),
                 "XDG_STATE_HOME": str(tmp_path), "MAILDIR_JMAP_PASSWORD": ""},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith(f"<3>maildir-jmap: cannot listen on 127.0.0.1:{port}")


def test_the_generated_password_stays_out_of_the_journal(tmp_path: Path) -> None:
    env = {"JOURNAL_STREAM": "8:1234", "HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path)}
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "maildir_jmap", "serve", "--port", str(port)],
        env={k: v for k, v in {**os.environ, **env}.items() if k != "MAILDIR_JMAP_PASSWORD"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        saved = tmp_path / "maildir-jmap" / "password"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not saved.exists():
            time.sleep(0.05)
        password = saved.read_text().strip()
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=20)
    assert password
    assert password not in out
    assert f"it is in {saved}" in out
