"""The users file and the app tokens, as ``maildir-jmap user ...`` and
``maildir-jmap token ...`` edit them."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import sys
from pathlib import Path

from maildir_jmap.console import CliError, first_line, say, state_dir_of
from maildir_jmap.tokens import TokenStore
from maildir_jmap.users import (
    User,
    UsersFileError,
    hash_password,
    load_users_file,
    save_users_file,
    valid_username,
)

PASSWORD_ENV = "MAILDIR_JMAP_PASSWORD"


def _users_path(args: argparse.Namespace) -> Path:
    if args.users:
        return Path(args.users).expanduser()
    return state_dir_of(args) / "users.toml"


def _read_password(args: argparse.Namespace) -> str:
    if args.password_file:
        return first_line(Path(args.password_file).expanduser())
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if not sys.stdin.isatty():
        raise CliError(f"give --password-file or set {PASSWORD_ENV} (no terminal to ask on)")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise CliError("the passwords differ")
    if not first:
        raise CliError("the password is empty")
    return first


def _load_or_empty(path: Path) -> dict[str, User]:
    if not path.exists():
        return {}
    try:
        return load_users_file(path)
    except UsersFileError as exc:
        raise CliError(str(exc)) from None


def cmd_user_add(args: argparse.Namespace) -> int:
    if not valid_username(args.name):
        raise CliError(f"invalid user name {args.name!r}")
    maildir = Path(args.maildir).expanduser()
    if not maildir.is_dir():
        raise CliError(f"{maildir} is not a directory")
    path = _users_path(args)
    users = _load_or_empty(path)
    verb = "updated" if args.name in users else "added"
    bad = [a for a in args.address if "@" not in a or any(c.isspace() for c in a)]
    if bad:
        raise CliError(f"not an address: {bad[0]!r}")
    users[args.name] = User(
        args.name, maildir.resolve(), hash_password(_read_password(args)), tuple(args.address)
    )
    save_users_file(path, users)
    say(f"{verb} {args.name} in {path}; serve with: maildir-jmap serve --users {path}")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    for name, user in sorted(_load_or_empty(_users_path(args)).items()):
        say(f"{name}\t{user.maildir}")
    return 0


def cmd_user_remove(args: argparse.Namespace) -> int:
    path = _users_path(args)
    users = _load_or_empty(path)
    if users.pop(args.name, None) is None:
        raise CliError(f"no user {args.name!r} in {path}")
    save_users_file(path, users)
    say(f"removed {args.name} from {path}")
    return 0


def _tokens(args: argparse.Namespace) -> TokenStore:
    return TokenStore(state_dir_of(args) / "tokens.json")


def _known_users(args: argparse.Namespace) -> tuple[str, ...] | None:
    """Who may get a token here: the users file's users (``--users``, else the one
    in the state directory), else the embedded mode's one user (the owner of
    ~/Maildir, or whoever runs the demo); None with Dovecot's auth (it is asked)."""
    path = _users_path(args)
    if path.exists():
        try:
            return tuple(sorted(load_users_file(path)))
        except UsersFileError as exc:
            raise CliError(str(exc)) from None
    maildir = Path.home() / "Maildir"
    names = {getpass.getuser()}
    if maildir.is_dir():
        import pwd

        with contextlib.suppress(KeyError):
            names.add(pwd.getpwuid(maildir.stat().st_uid).pw_name)
    return tuple(sorted(names))


def cmd_token_create(args: argparse.Namespace) -> int:
    if not valid_username(args.user):
        raise CliError(f"invalid user name {args.user!r}")
    known = None if args.dovecot else _known_users(args)
    if known is not None and args.user not in known:
        raise CliError(f"no user {args.user!r} here (users: {', '.join(known) or 'none'})")
    info, token = _tokens(args).create(args.user, args.label)
    say(token)
    sys.stderr.write(f"token {info.id} for {args.user}; it is shown only now\n")
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    import time

    for info in _tokens(args).list(args.user):
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.created))
        say(f"{info.id}\t{info.user}\t{created}\t{info.label}")
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    if not _tokens(args).revoke(args.id):
        raise CliError(f"no token {args.id!r}")
    say(f"revoked {args.id}")
    return 0
