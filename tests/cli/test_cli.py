"""The maildir-jmap command: users file, tokens, embedded-mode credentials, and the
README's run command tried as a new user would (a real uvicorn on loopback)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from maildir_jmap.cli import main
from maildir_jmap.demo import create_demo_maildir
from maildir_jmap.tokens import TokenStore
from maildir_jmap.users import User, load_users_file, save_users_file
from tests.dovecot import open_ancestors
from tests.ports import free_port


def test_user_add_list_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    users = tmp_path / "users.toml"
    pw = tmp_path / "pw"
    pw.write_text("s3cret\nignored second line\n")
    box = tmp_path / "Maildir"
    box.mkdir()
    name = 'o"dd\\name@example.org'
    assert (
        main(["user", "add", name, str(box), "--users", str(users), "--password-file", str(pw)])
        == 0
    )
    loaded = load_users_file(users)
    assert loaded[name].maildir == box
    assert loaded[name].password_hash.startswith("$argon2id$")
    assert (users.stat().st_mode & 0o777) == 0o600
    assert main(["user", "list", "--users", str(users)]) == 0
    assert name in capsys.readouterr().out
    assert main(["user", "remove", name, "--users", str(users)]) == 0
    assert load_users_file(users) == {}


def test_user_add_refuses_bad_input(tmp_path: Path) -> None:
    users = tmp_path / "users.toml"
    pw = tmp_path / "pw"
    pw.write_text("x\n")
    common = ["--users", str(users), "--password-file", str(pw)]
    assert main(["user", "add", "bad:name", str(tmp_path), *common]) == 2
    assert main(["user", "add", "ok", str(tmp_path / "missing"), *common]) == 2
    assert not users.exists()


def test_token_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = ["--state-dir", str(tmp_path)]
    save_users_file(tmp_path / "users.toml", {"alice": User("alice", tmp_path, "$argon2id$x")})
    assert main(["token", "create", "alice", "--label", "backup script", *state]) == 0
    token = capsys.readouterr().out.strip()
    store = TokenStore(tmp_path / "tokens.json")
    assert store.verify(token) == "alice"
    assert token not in (tmp_path / "tokens.json").read_text()  # stored hashed
    assert main(["token", "list", *state]) == 0
    listing = capsys.readouterr().out
    token_id = listing.split("\t")[0]
    assert "backup script" in listing
    assert main(["token", "revoke", token_id, *state]) == 0
    assert store.verify(token) is None
    assert main(["token", "revoke", token_id, *state]) == 2


def test_serve_rejects_a_missing_maildir(tmp_path: Path) -> None:
    assert main(["serve", str(tmp_path / "nope"), "--state-dir", str(tmp_path)]) == 2


def _serve(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "maildir_jmap", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(url: str, auth: tuple[str, str], proc: subprocess.Popen[str]) -> httpx.Response:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read() if proc.stdout else "server exited")
        try:
            return httpx.get(url, auth=auth, timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("server did not answer")


def test_serve_with_no_arguments_creates_a_demo_and_a_password(tmp_path: Path) -> None:
    """The README's run command on a fresh machine: no Maildir, no password."""
    port = free_port()
    env = {"HOME": str(tmp_path / "home"), "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop("MAILDIR_JMAP_PASSWORD", None)
    (tmp_path / "home").mkdir()
    proc = _serve(["serve", "--port", str(port)], env)
    try:
        state = tmp_path / "state" / "maildir-jmap"
        deadline = time.monotonic() + 20
        while not (state / "password").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        password = (state / "password").read_text().strip()
        user = os.environ.get("USER") or __import__("getpass").getuser()
        response = _wait_for(f"http://127.0.0.1:{port}/.well-known/jmap", (user, password), proc)
        assert response.status_code == 200
        session = response.json()
        assert session["username"] == user
        echo = httpx.post(
            session["apiUrl"],
            auth=(user, password),
            json={
                "using": ["urn:ietf:params:jmap:core"],
                "methodCalls": [["Core/echo", {"hi": 1}, "c"]],
            },
        )
        assert echo.json()["methodResponses"] == [["Core/echo", {"hi": 1}, "c"]]
        assert (state / "demo-Maildir" / "cur").is_dir()
        assert (state / "password").stat().st_mode & 0o777 == 0o600
        assert httpx.get(f"http://127.0.0.1:{port}/jmap/session").status_code == 401
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert password in out  # printed once at start


def test_serve_given_maildir_user_and_password_file(tmp_path: Path, maildir: Path) -> None:
    port = free_port()
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    args = ["serve", str(maildir), "--port", str(port), "--user", "carol"]
    args += ["--password-file", str(pw), "--state-dir", str(tmp_path / "st")]
    proc = _serve(args, {"MAILDIR_JMAP_PASSWORD": "from-env"})
    try:
        url = f"http://127.0.0.1:{port}/jmap/session"
        assert _wait_for(url, ("carol", "from-file"), proc).status_code == 200
        assert httpx.get(url, auth=("carol", "from-env")).status_code == 401
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_serve_password_from_environment(tmp_path: Path, maildir: Path) -> None:
    port = free_port()
    args = ["serve", str(maildir), "--port", str(port), "--user", "dave"]
    proc = _serve([*args, "--state-dir", str(tmp_path / "st")], {"MAILDIR_JMAP_PASSWORD": "env-pw"})
    try:
        url = f"http://127.0.0.1:{port}/jmap/session"
        assert _wait_for(url, ("dave", "env-pw"), proc).status_code == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert not (tmp_path / "st" / "password").exists()


def test_a_second_server_or_index_on_a_served_account_is_refused(
    tmp_path: Path, maildir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 20: while one `serve` process owns the account, a second `serve` of the
    same Maildir and state will not start and `index` refuses, each saying why."""
    state = ["--state-dir", str(tmp_path / "st")]
    env = {"MAILDIR_JMAP_PASSWORD": "pw"}
    port = free_port()
    owner = _serve(["serve", str(maildir), "--port", str(port), "--user", "erin", *state], env)
    try:
        url = f"http://127.0.0.1:{port}/jmap/session"
        assert _wait_for(url, ("erin", "pw"), owner).status_code == 200
        other = ["serve", str(maildir), "--port", str(free_port()), "--user", "erin", *state]
        second = _serve(other, env)
        out, _ = second.communicate(timeout=30)
        assert second.returncode != 0
        assert "is in use by pid " in out
        assert "served by another process" in out
        assert main(["index", str(maildir), "--user", "erin", *state]) == 2
        assert "is in use by pid " in capsys.readouterr().err
        assert httpx.get(url, auth=("erin", "pw")).status_code == 200  # the owner serves on
    finally:
        owner.terminate()
        owner.communicate(timeout=10)


def test_serve_layout_fs_is_honoured(tmp_path: Path) -> None:
    """Issue 15: ``serve --layout fs`` was dropped on the way to the config, so a
    Maildir with no folders yet (which detection takes for Maildir++) got .Work."""
    from maildir_jmap.store.maildir import make_folder

    root = tmp_path / "Maildir"
    make_folder(root, marker=False)
    port = free_port()
    args = ["serve", str(root), "--port", str(port), "--user", "erin", "--layout", "fs"]
    proc = _serve([*args, "--state-dir", str(tmp_path / "st")], {"MAILDIR_JMAP_PASSWORD": "pw"})
    try:
        session = _wait_for(f"http://127.0.0.1:{port}/jmap/session", ("erin", "pw"), proc).json()
        account = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        create = ["Mailbox/set", {"accountId": account, "create": {"w": {"name": "Work"}}}, "c"]
        body = {"using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]}
        response = httpx.post(session["apiUrl"], auth=("erin", "pw"), json=body | {
            "methodCalls": [create]})  # fmt: skip
        assert "w" in response.json()["methodResponses"][0][1]["created"]
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert (root / "Work" / "cur").is_dir()
    assert not (root / ".Work").exists()


def test_serve_users_file_serves_each_user(tmp_path: Path, maildir: Path) -> None:
    users = tmp_path / "users.toml"
    for name, pw in (("erin", "e-pw"), ("frank", "f-pw")):
        pw_file = tmp_path / f"{name}.pw"
        pw_file.write_text(pw)
        assert (
            main(
                [
                    "user",
                    "add",
                    name,
                    str(maildir),
                    "--users",
                    str(users),
                    "--password-file",
                    str(pw_file),
                ]
            )
            == 0
        )
    port = free_port()
    proc = _serve(
        ["serve", "--users", str(users), "--port", str(port), "--state-dir", str(tmp_path / "st")],
        {},
    )
    try:
        url = f"http://127.0.0.1:{port}/jmap/session"
        erin = _wait_for(url, ("erin", "e-pw"), proc).json()
        frank = httpx.get(url, auth=("frank", "f-pw")).json()
        assert erin["accounts"].keys() != frank["accounts"].keys()
        assert httpx.get(url, auth=("erin", "f-pw")).status_code == 401
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, as an admin running index")
def test_index_as_root_leaves_nothing_the_service_user_cannot_write(
    tmp_path: Path, maildir: Path
) -> None:
    """Issue 15: ``index`` run as root left root-owned files in the service user's
    state directory (503 for every request afterwards). It runs as the owner."""
    service = (5000, 5000)  # the vmail user of a Dovecot deployment
    state = tmp_path / "st"
    state.mkdir()
    for path in (state, maildir, *maildir.rglob("*")):
        os.chown(path, *service)
    open_ancestors(state)  # the service user must reach it through pytest's temp dirs
    done = subprocess.run(
        [sys.executable, "-m", "maildir_jmap", "index", str(maildir), "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    written = [state, *state.rglob("*")]
    assert len(written) > 3
    assert {(p.stat().st_uid, p.stat().st_gid) for p in written} == {service}


def test_index_command_builds_and_refreshes(
    tmp_path: Path, maildir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = ["--state-dir", str(tmp_path / "st")]
    assert main(["index", str(maildir), "--user", "zed", *state]) == 0
    first = capsys.readouterr().out
    assert "6 messages, 5 folders" in first
    assert list((tmp_path / "st").rglob("snapshot.msgpack"))
    assert main(["index", str(maildir), "--user", "zed", *state]) == 0  # a refresh
    assert "6 messages" in capsys.readouterr().out
    assert main(["index", str(tmp_path / "missing"), *state]) == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop it")
def test_serve_as_root_becomes_the_maildirs_owner_and_gives_it_the_state(tmp_path: Path) -> None:
    """Issue 15: files a root-run server creates belong to the Maildirs' owner."""
    maildir = create_demo_maildir(tmp_path / "Maildir", user="alice")
    for top, dirs, files in os.walk(maildir):
        for name in [*dirs, *files]:
            os.chown(os.path.join(top, name), 5000, 5000)
    os.chown(maildir, 5000, 5000)
    os.chmod(tmp_path, 0o755)
    state = tmp_path / "state"
    (state / "accounts").mkdir(parents=True)  # left by an earlier run as root
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from maildir_jmap.config import Config\n"
        "from maildir_jmap.runas import serve_as_owner\n"
        "from maildir_jmap.users import User, UserDirectory\n"
        f"users = UserDirectory({{'alice': User('alice', Path({str(maildir)!r}), '')}})\n"
        f"serve_as_owner(Config(state_dir=Path({str(state)!r})), users, check_python=False)\n"
        "print(os.getuid(), os.getgid())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["5000", "5000"]
    assert (state / "accounts").stat().st_uid == 5000


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--port", "99999"], "--port 99999 is not a port (1-65535)"),
        (["--public-url", "https://mail.example.org/"], "--public-url 'https://mail.example.org/'"),
        (["--public-url", "mail.example.org"], "must be http(s)://HOST[:PORT]"),
    ],
)
def test_serve_refuses_bad_flags_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], said: str
) -> None:
    maildir = create_demo_maildir(tmp_path / "Maildir", user="alice")
    argv = ["serve", str(maildir), "--state-dir", str(tmp_path / "state"), *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert said in err
    assert len(err.strip().splitlines()) == 1


def test_serve_refuses_a_directory_that_is_not_a_maildir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "plain").mkdir()
    assert main(["serve", str(tmp_path / "plain"), "--state-dir", str(tmp_path / "s")]) == 2
    assert "is not a Maildir (no cur, new, tmp)" in capsys.readouterr().err
    maildir = create_demo_maildir(tmp_path / "Maildir", user="alice")
    assert main(["serve", str(maildir), "--state-dir", str(maildir / "state")]) == 2
    assert "must not be inside" in capsys.readouterr().err
    assert not (maildir / "state").exists()


def test_token_create_refuses_a_user_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 17: a token for nobody is a mistake said in one line."""
    state = ["--state-dir", str(tmp_path)]
    save_users_file(tmp_path / "users.toml", {"alice": User("alice", tmp_path, "$argon2id$x")})
    assert main(["token", "create", "mallory", *state]) == 2
    assert "no user 'mallory' here (users: alice)" in capsys.readouterr().err
    assert not (tmp_path / "tokens.json").exists()
    assert main(["token", "create", "mallory", "--dovecot", *state]) == 0  # Dovecot decides


def test_version_and_log_level_after_the_subcommand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 17: ``--version``; ``--log-level`` where admins put it."""
    from maildir_jmap import __version__

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"maildir-jmap {__version__}"
    state = ["--state-dir", str(tmp_path)]
    assert main(["token", "list", "--log-level", "DEBUG", *state]) == 0
    assert main(["token", "list", *state, "--log-level=WARNING"]) == 0
    with pytest.raises(SystemExit):
        main(["token", "list", "--log-level", "LOUD", *state])
