"""Issue 17: an admin's everyday mistakes, each answered in one line with the
documented exit status (2: a mistake to fix), never a traceback. The command
runs as a real process; "unreadable" is made real by running it as root
without the capabilities that let root read anything (setpriv), so the
permission bits bite as they would for the service user."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from maildir_jmap.demo import create_demo_maildir
from tests.ports import free_port
from tests.tls import self_signed

NO_ROOT_POWERS = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv"
)


def run(
    args: list[str], env: dict[str, str] | None = None, powerless: bool = False
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MAILDIR_JMAP_")}
    command = [sys.executable, "-m", "maildir_jmap", *args]
    return subprocess.run(
        (NO_ROOT_POWERS if powerless else []) + command,
        env={**base, "MAILDIR_JMAP_PASSWORD": "pw", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line(result: subprocess.CompletedProcess[str], status: int, said: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(lines) == 1, result.stderr
    assert said in lines[0]


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    return create_demo_maildir(tmp_path / "Maildir", user="alice")


@needs_root
@pytest.mark.parametrize("part", ["", "cur"])
def test_an_unreadable_maildir(tmp_path: Path, maildir: Path, part: str) -> None:
    (maildir / part).chmod(0o000)
    try:
        served = run(["serve", str(maildir), "--state-dir", str(tmp_path / "s")], powerless=True)
        indexed = run(["index", str(maildir), "--state-dir", str(tmp_path / "s")], powerless=True)
    finally:
        (maildir / part).chmod(0o700)
    where = f"cannot read the Maildir {maildir / part if part else maildir}"
    one_line(served, 2, where)
    one_line(indexed, 2, where)


@needs_root
def test_a_state_directory_that_is_not_writable(tmp_path: Path, maildir: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o500)
    result = run(["serve", str(maildir), "--state-dir", str(state)], powerless=True)
    one_line(result, 2, f"the state directory {state} is not writable by root")


def test_no_usable_home_and_no_state_dir(tmp_path: Path, maildir: Path) -> None:
    """A service user whose home is /nonexistent (or none): four chained
    tracebacks before; now the fix is named."""
    env = {"HOME": "/proc/no-home", "XDG_STATE_HOME": ""}
    result = run(["serve", str(maildir)], env=env)
    one_line(result, 2, "is not writable")
    assert "give --state-dir or MAILDIR_JMAP_SERVER_STATE_DIR" in result.stderr


def test_missing_or_mismatched_tls_files(tmp_path: Path, maildir: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[server]\nstate_dir = "{tmp_path / "s"}"\ntls_cert = "{tmp_path / "no.pem"}"\n'
        f'tls_key = "{tmp_path / "no.key"}"\n'
    )
    one_line(run(["serve", "--config", str(config)]), 2, "cannot read server.tls_cert")
    cert, key = self_signed(tmp_path)
    config.write_text(
        f'[server]\nstate_dir = "{tmp_path / "s"}"\ntls_cert = "{cert}"\ntls_key = "{cert}"\n'
    )
    one_line(run(["serve", "--config", str(config)]), 2, "are not a PEM certificate chain")
    assert key.exists()


def test_a_port_in_use_is_said_before_any_password_or_url(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        env = {"HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "xdg")}
        env["MAILDIR_JMAP_PASSWORD"] = ""  # a password would be generated and shown
        result = run(["serve", "--port", str(port)], env=env)
    one_line(result, 2, f"cannot listen on 127.0.0.1:{port}: Address already in use")
    assert "password" not in result.stdout
    assert "session at" not in result.stdout
    assert not (tmp_path / "xdg" / "maildir-jmap" / "password").exists()


@pytest.mark.parametrize(
    ("toml", "said"),
    [
        ('[server]\nport = "eighty"\n', "server.port must be a number"),
        ("[server]\nport = 99999\n", "server.port 99999 is not a port"),
        ('[server]\nmetrics_from = ["10.0.0.0/33"]\n', "is not an address or network"),
        ('[server]\npublic_url = "https://x.org/"\n', "must not end in '/'"),
        ("[mail]\nidle_close = -1\n", "mail.idle_close must not be negative"),
        ("[nosuch]\nkey = 1\n", "unknown setting nosuch.key"),
    ],
)
def test_config_file_mistakes(tmp_path: Path, toml: str, said: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(toml)
    one_line(run(["serve", "--config", str(config)]), 2, said)
    one_line(run(["check", "--config", str(config)]), 2, said)


def test_environment_settings_work_without_a_config_file(tmp_path: Path, maildir: Path) -> None:
    """MAILDIR_JMAP_<SECTION>_<KEY> without --config: read and checked the same."""
    env = {"MAILDIR_JMAP_SERVER_PORT": "99999"}
    result = run(["serve", str(maildir), "--state-dir", str(tmp_path / "s")], env=env)
    one_line(result, 2, "MAILDIR_JMAP_SERVER_PORT 99999 is not a port (1-65535)")
    env = {"MAILDIR_JMAP_SERVER_NOSUCH": "1"}
    result = run(["serve", str(maildir), "--state-dir", str(tmp_path / "s")], env=env)
    one_line(result, 2, "unknown environment setting MAILDIR_JMAP_SERVER_NOSUCH")


def test_the_top_level_help_is_for_users() -> None:
    result = run(["--help"])
    assert result.returncode == 0
    assert "serve           run the server" in result.stdout
    assert "Exit status: 0 ok" in result.stdout
    assert "This module" not in result.stdout


def test_an_unexpected_failure_is_one_line_with_status_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from maildir_jmap import cli

    def broken(args: object) -> int:
        raise PermissionError(13, "Permission denied", "/var/vmail/x")

    monkeypatch.setattr(cli, "cmd_config_example", broken)
    assert cli.main(["config-example"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "maildir-jmap: PermissionError: Permission denied (/var/vmail/x) "
        "(--log-level DEBUG shows where)"
    ]


def test_a_state_directory_inside_a_users_maildir_from_the_config(tmp_path: Path) -> None:
    """Issue 17: refused however it is given (flag, file, environment), and
    before anything is made inside the Maildir."""
    from maildir_jmap.users import User, save_users_file

    maildir = create_demo_maildir(tmp_path / "Maildir", user="alice")
    users = tmp_path / "users.toml"
    save_users_file(users, {"alice": User("alice", maildir, "$argon2id$x")})
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\nstate_dir = "{maildir / "st"}"\n[auth]\nusers_file = "{users}"\n')
    one_line(run(["serve", "--config", str(config)]), 2, "must not be inside")
    env = {"MAILDIR_JMAP_SERVER_STATE_DIR": str(maildir / "st")}
    one_line(run(["serve", str(maildir)], env=env), 2, "must not be inside")
    assert not (maildir / "st").exists()


@needs_root
def test_root_refuses_to_become_a_user_who_cannot_read_this_python(tmp_path: Path) -> None:
    """Issue 17: run as root on a Maildir of the mail user, ``serve`` becomes that
    user (issue 15); when this Python lives where that user may not read it (a
    venv under /root) every later import would fail one by one, so it is said in
    one line instead, before anything runs as the mail user."""
    from tests.dovecot import MAIL_UID, chown_tree, open_ancestors

    maildir = create_demo_maildir(tmp_path / "Maildir", user="alice")
    chown_tree(maildir)
    open_ancestors(maildir)
    check = subprocess.run(
        ["setpriv", f"--reuid={MAIL_UID}", f"--regid={MAIL_UID}", "--clear-groups",
         "test", "-r", os.path.realpath(sys.executable)],
        capture_output=True,
    )  # fmt: skip
    if check.returncode == 0:
        pytest.skip("the mail user can read this Python here")
    result = run(["serve", str(maildir), "--state-dir", str(tmp_path / "s")])
    one_line(result, 2, f"cannot run as {MAIL_UID} (the owner of the Maildirs)")
    assert "cannot read this Python" in result.stderr
