"""The embedded mode's one user (``maildir-jmap serve`` with no users file and no
Dovecot): the Maildir given, else ~/Maildir, else a demo; the login name of its
owner; a password from a file, the environment, or generated once and kept."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import secrets
from pathlib import Path

from maildir_jmap import preflight
from maildir_jmap.admin import PASSWORD_ENV
from maildir_jmap.console import CliError, first_line, say, user_name
from maildir_jmap.users import (
    User,
    UserDirectory,
    UsersFile,
    UsersFileError,
    hash_password,
    valid_username,
    write_private_file,
)

log = logging.getLogger(__name__)


def owner_name(path: Path) -> str:
    return user_name(path.stat().st_uid)


def _password(args: argparse.Namespace, state_dir: Path, user: str) -> str:
    """--password-file, else $MAILDIR_JMAP_PASSWORD, else one generated on the first
    start, kept in the state directory (mode 0600). It is shown on a terminal only:
    under systemd stdout is the journal, which must never hold it (issue 17)."""
    if args.password_file:
        return first_line(Path(args.password_file).expanduser())
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    saved = state_dir / "password"
    if saved.exists():
        log.info("using the generated password kept in %s", saved)
        return first_line(saved)
    password = secrets.token_urlsafe(12)
    write_private_file(saved, (password + "\n").encode())
    if os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"):
        say(f"maildir-jmap: generated a password for {user!r}; it is in {saved}")
    else:
        say(f"maildir-jmap: log in as {user!r} with password {password!r} (kept in {saved})")
    return password


def _maildir(args: argparse.Namespace, state_dir: Path) -> Path:
    if args.maildir:
        maildir = Path(args.maildir).expanduser()
        preflight.maildir(maildir)
        return maildir.resolve()
    home = Path.home() / "Maildir"
    if home.is_dir():
        return home.resolve()
    from maildir_jmap.demo import create_demo_maildir

    demo = state_dir / "demo-Maildir"
    if not demo.exists():
        create_demo_maildir(demo, user=getpass.getuser())
        say(f"maildir-jmap: no Maildir given and no ~/Maildir; created a demo at {demo}")
    else:
        say(f"maildir-jmap: no Maildir given and no ~/Maildir; serving the demo at {demo}")
    return demo


def directory(args: argparse.Namespace, state_dir: Path, users_file: Path | None) -> UserDirectory:
    """The users of a users file, else the one embedded user."""
    if users_file is not None:
        if args.maildir or args.user or args.password_file:
            raise CliError("--users FILE replaces MAILDIR, --user and --password-file")
        try:
            users = UsersFile(users_file)
        except UsersFileError as exc:
            raise CliError(str(exc)) from None
        if not users.names():
            raise CliError(f"{users_file} defines no users (add one with `maildir-jmap user add`)")
        return users
    maildir = _maildir(args, state_dir)
    name = args.user or owner_name(maildir)
    if not valid_username(name):
        raise CliError(f"invalid user name {name!r}")
    password = _password(args, state_dir, name)
    return UserDirectory({name: User(name, maildir, hash_password(password))})
