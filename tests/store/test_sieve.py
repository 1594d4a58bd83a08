"""Vacation as a Pigeonhole Sieve script: it compiles (sievec), acts only inside
its window, and the user's own rules keep running (sieve-test, Debian's
dovecot-sieve)."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from maildir_jmap.store.sieve import SieveLocation, Vacation, install, vacation_script
from tests.dovecot import MAIL_GID, MAIL_UID, chown_tree, open_ancestors

pytestmark = pytest.mark.skipif(
    shutil.which("sieve-test") is None, reason="dovecot-sieve is not installed (scripts/test does)"
)

MESSAGE = (
    "From: bob@example.net\nTo: alice@example.org\nSubject: monthly report\n"
    "Message-ID: <1@example.net>\n\nhello\n"
)
PAST, FUTURE = datetime(2020, 1, 1, tzinfo=UTC), datetime(2099, 1, 1, tzinfo=UTC)


def vacation(**changes: object) -> Vacation:
    values: dict[str, object] = {
        "enabled": True,
        "from_date": PAST,
        "to_date": FUTURE,
        "subject": 'Away "until" Monday',
        "text_body": ".a line with a dot\nBack on Monday.\n\\ and a backslash",
        "html_body": None,
        "addresses": ("alice@example.org",),
    }
    values.update(changes)
    return Vacation(**values)  # type: ignore[arg-type]


def home_for(tmp_path: Path) -> tuple[Path, SieveLocation]:
    home = tmp_path / "home"
    for sub in ("cur", "new", "tmp"):
        (home / "Maildir" / sub).mkdir(parents=True)
    return home, SieveLocation(home / "sieve", home / ".dovecot.sieve")


def run_sieve(home: Path) -> str:
    """sieve-test on the active script, as Pigeonhole would run it for delivery."""
    conf = home.parent / "dovecot.conf"
    conf.write_text(
        f"protocols =\nmail_location = maildir:~/Maildir\nmail_uid = {MAIL_UID}\n"
        f"mail_gid = {MAIL_GID}\nplugin {{\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n}}\n"
    )
    message = home.parent / "message.eml"
    message.write_text(MESSAGE)
    for path in (conf, message):
        os.chmod(path, 0o644)
    chown_tree(home)
    open_ancestors(home)
    command = ["sieve-test", "-c", str(conf), str(home / ".dovecot.sieve"), str(message)]
    if os.geteuid() == 0:  # Pigeonhole refuses to run scripts as root
        command = [
            "setpriv",
            f"--reuid={MAIL_UID}",
            f"--regid={MAIL_GID}",
            "--clear-groups",
            *command,
        ]
    env = {"HOME": str(home), "USER": "alice", "PATH": os.environ["PATH"]}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert "final result: success" in done.stdout + done.stderr, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"from_date": None, "to_date": None, "subject": None},
        {"text_body": None, "html_body": "<p>Back <b>Monday</b></p>"},
        {"text_body": None, "html_body": None},
        {"enabled": False},
        {"subject": "Ünïcode ✈", "text_body": "Zurück am Montag.\n.\n.."},
    ],
)
def test_generated_scripts_compile_with_sievec(tmp_path: Path, settings: dict[str, object]) -> None:
    script = tmp_path / "v.sieve"
    script.write_text(vacation_script(vacation(**settings)), encoding="utf-8")
    done = subprocess.run(
        ["sievec", str(script)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "v.svbin").exists()


def test_vacation_answers_inside_its_window_rfc8621_8(tmp_path: Path) -> None:
    home, location = home_for(tmp_path)
    install(location, vacation())
    out = run_sieve(home)
    assert "send vacation message" in out
    assert 'subject : Away "until" Monday' in out
    assert ".a line with a dot" in out  # dot-stuffing undone by the parser


@pytest.mark.parametrize(
    "window",
    [
        {"from_date": FUTURE, "to_date": None},
        {"from_date": None, "to_date": PAST},
        {"enabled": False},
    ],
)
def test_no_vacation_outside_its_window_rfc8621_8(
    tmp_path: Path, window: dict[str, object]
) -> None:
    home, location = home_for(tmp_path)
    install(location, vacation(**window))
    out = run_sieve(home)
    assert "vacation" not in out
    assert "store message in folder: INBOX" in out


def test_the_users_active_script_keeps_running(tmp_path: Path) -> None:
    home, location = home_for(tmp_path)
    location.directory.mkdir()
    mine = 'require ["fileinto"];\nif header :contains "subject" "report" { fileinto "Work"; }\n'
    (location.directory / "mine.sieve").write_text(mine)
    location.active.symlink_to("sieve/mine.sieve")  # as ManageSieve activates it
    install(location, vacation())
    install(location, vacation(subject="again"))  # a second change keeps the include
    out = run_sieve(home)
    assert "send vacation message" in out
    assert "store message in folder: Work" in out
    assert (location.directory / "mine.sieve").read_text() == mine  # never edited


def test_a_plain_active_file_is_adopted_not_lost(tmp_path: Path) -> None:
    home, location = home_for(tmp_path)
    location.directory.mkdir()
    (location.directory / "pre-jmap.sieve").write_text("# someone else's\n")
    mine = 'require ["fileinto"];\nif header :contains "subject" "report" { fileinto "Work"; }\n'
    location.active.write_text(mine)
    install(location, vacation(enabled=False))
    assert location.active.is_symlink()
    assert (location.directory / "pre-jmap-1.sieve").read_text() == mine
    assert (location.directory / "pre-jmap.sieve").read_text() == "# someone else's\n"
    out = run_sieve(home)
    assert "store message in folder: Work" in out
    assert "vacation" not in out
