"""The ``maildir-jmap`` command: serve, user, token.

The flags of ``serve`` are a stable interface (scripts and the systemd unit use
them). This module is the only place that writes to the terminal.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import pwd
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from maildir_jmap.config import Config, default_state_dir
from maildir_jmap.delivery.scheduler import SendingSettings
from maildir_jmap.delivery.smtp import Smarthost
from maildir_jmap.users import (
    User,
    UserDirectory,
    UsersFileError,
    hash_password,
    load_users_file,
    save_users_file,
    valid_username,
    write_private_file,
)

if TYPE_CHECKING:
    from maildir_jmap.tokens import TokenStore

log = logging.getLogger(__name__)
PASSWORD_ENV = "MAILDIR_JMAP_PASSWORD"


class CliError(Exception):
    """A problem the user can fix; printed without a traceback, exit status 2."""


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _state_dir(args: argparse.Namespace) -> Path:
    path = Path(args.state_dir).expanduser() if args.state_dir else default_state_dir()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path.resolve()


def _owner_name(path: Path) -> str:
    uid = path.stat().st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _first_line(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read password file {path}: {exc.strerror}") from None
    line = text.splitlines()[0] if text else ""
    if not line:
        raise CliError(f"password file {path} is empty")
    return line


def _embedded_password(args: argparse.Namespace, state_dir: Path, user: str) -> str:
    """--password-file, else $MAILDIR_JMAP_PASSWORD, else one generated on the first
    start, kept in the state directory (mode 0600) and printed that once."""
    if args.password_file:
        return _first_line(Path(args.password_file).expanduser())
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    saved = state_dir / "password"
    if saved.exists():
        log.info("using the generated password kept in %s", saved)
        return _first_line(saved)
    password = secrets.token_urlsafe(12)
    write_private_file(saved, (password + "\n").encode())
    _say(f"maildir-jmap: log in as {user!r} with password {password!r} (kept in {saved})")
    return password


def _embedded_maildir(args: argparse.Namespace, state_dir: Path) -> Path:
    if args.maildir:
        maildir = Path(args.maildir).expanduser()
        if not maildir.is_dir():
            raise CliError(f"{maildir} is not a directory")
        return maildir.resolve()
    home = Path.home() / "Maildir"
    if home.is_dir():
        return home.resolve()
    from maildir_jmap.demo import create_demo_maildir

    demo = state_dir / "demo-Maildir"
    if not demo.exists():
        create_demo_maildir(demo, user=getpass.getuser())
        _say(f"maildir-jmap: no Maildir given and no ~/Maildir; created a demo at {demo}")
    else:
        _say(f"maildir-jmap: no Maildir given and no ~/Maildir; serving the demo at {demo}")
    return demo


def _directory(args: argparse.Namespace, state_dir: Path) -> UserDirectory:
    if args.users:
        if args.maildir or args.user or args.password_file:
            raise CliError("--users FILE replaces MAILDIR, --user and --password-file")
        try:
            users = load_users_file(Path(args.users).expanduser())
        except UsersFileError as exc:
            raise CliError(str(exc)) from None
        if not users:
            raise CliError(f"{args.users} defines no users (add one with `maildir-jmap user add`)")
        return UserDirectory(users)
    maildir = _embedded_maildir(args, state_dir)
    name = args.user or _owner_name(maildir)
    if not valid_username(name):
        raise CliError(f"invalid user name {name!r}")
    password = _embedded_password(args, state_dir, name)
    return UserDirectory({name: User(name, maildir, hash_password(password))})


def sending_settings(args: argparse.Namespace) -> SendingSettings:
    host, _, port = args.smarthost.rpartition(":")
    if not host or not port.isdigit():
        raise CliError(f"--smarthost must be HOST:PORT, not {args.smarthost!r}")
    smarthost = Smarthost(
        host=host.strip("[]"),
        port=int(port),
        tls=args.smarthost_tls,
        username=args.smarthost_user,
        password=os.environ.get("MAILDIR_JMAP_SMTP_PASSWORD") if args.smarthost_user else None,
    )
    return SendingSettings(smarthost=smarthost)


def cmd_serve(args: argparse.Namespace) -> int:
    from maildir_jmap import serve

    if args.config:
        given = [f for f in SERVE_FLAGS if getattr(args, f) != SERVE_DEFAULTS.get(f)]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise CliError(f"--config replaces {flag}: set it in the file (or the environment)")
        config = _load_config(args.config)
        config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        users = serve.users_for(config, lambda: _directory(args, config.state_dir))
    else:
        state_dir = _state_dir(args)
        users = _directory(args, state_dir)
        config = Config(
            state_dir=state_dir,
            host=args.host,
            port=args.port,
            public_url=args.public_url,
            push_allow_private_targets=args.push_allow_private,
            push_allow_http=args.push_allow_private,
            push_subject=args.push_contact,
            sieve_dir=args.sieve_dir,
            sending=sending_settings(args),
        )
    for name in users.names():
        user = users.get(name)
        assert user is not None
        log.info("serving %s from %s", name, user.maildir)
    scheme = "https" if config.tls_cert else "http"
    _say(f"maildir-jmap: JMAP session at {scheme}://{config.host}:{config.port}/.well-known/jmap")
    serve.run(config, users, args.log_level)
    return 0


def _load_config(path: str) -> Config:
    from maildir_jmap.config_file import ConfigError, load

    try:
        return load(Path(path).expanduser())
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def cmd_check(args: argparse.Namespace) -> int:
    from maildir_jmap.check import check

    config = _load_config(args.config) if args.config else Config()
    problems = 0
    for ok, message in check(config, args.user):
        _say(("ok       " if ok else "PROBLEM  ") + message)
        problems += not ok
    _say(f"{problems} problem(s)" if problems else "all checks passed")
    return 1 if problems else 0


def cmd_config_example(args: argparse.Namespace) -> int:
    from maildir_jmap.config_file import example

    sys.stdout.write(example())
    return 0


class ProgressBar:
    """A one-line progress bar on stderr (only when it is a terminal)."""

    def __init__(self) -> None:
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if not sys.stderr.isatty() or total == 0:
            return
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} messages")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


def cmd_index(args: argparse.Namespace) -> int:
    """Build or refresh the index of one Maildir, the way the server would."""
    import time

    from maildir_jmap.store.account import Account
    from maildir_jmap.store.names import LAYOUTS
    from maildir_jmap.store.roles import read_dovecot_roles

    maildir = Path(args.maildir).expanduser()
    if not maildir.is_dir():
        raise CliError(f"{maildir} is not a directory")
    maildir = maildir.resolve()
    state_dir = _state_dir(args)
    user = args.user or _owner_name(maildir)
    bar = ProgressBar()
    started = time.monotonic()
    account = Account.open(
        user,
        maildir,
        state_dir,
        layout=LAYOUTS.get(args.layout),
        roles=read_dovecot_roles() or None,
        progress=bar,
    )
    account.compact()
    account.sync_search()
    bar.close()
    elapsed = time.monotonic() - started
    index = account.index
    messages = len(index.emails)
    rate = messages / elapsed if elapsed > 0 else 0.0
    _say(
        f"indexed {maildir} for {user}: {messages} messages, {len(index.mailboxes)} folders, "
        f"{len(index.threads)} threads in {elapsed:.1f} s ({rate:.0f} messages/s); "
        f"index at {account.journal.directory}"
    )
    account.close()
    return 0


def _users_path(args: argparse.Namespace) -> Path:
    if args.users:
        return Path(args.users).expanduser()
    return _state_dir(args) / "users.toml"


def _read_password(args: argparse.Namespace) -> str:
    if args.password_file:
        return _first_line(Path(args.password_file).expanduser())
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
    _say(f"{verb} {args.name} in {path}; serve with: maildir-jmap serve --users {path}")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    for name, user in sorted(_load_or_empty(_users_path(args)).items()):
        _say(f"{name}\t{user.maildir}")
    return 0


def cmd_user_remove(args: argparse.Namespace) -> int:
    path = _users_path(args)
    users = _load_or_empty(path)
    if users.pop(args.name, None) is None:
        raise CliError(f"no user {args.name!r} in {path}")
    save_users_file(path, users)
    _say(f"removed {args.name} from {path}")
    return 0


def _tokens(args: argparse.Namespace) -> TokenStore:
    from maildir_jmap.tokens import TokenStore

    return TokenStore(_state_dir(args) / "tokens.json")


def cmd_token_create(args: argparse.Namespace) -> int:
    if not valid_username(args.user):
        raise CliError(f"invalid user name {args.user!r}")
    info, token = _tokens(args).create(args.user, args.label)
    _say(token)
    sys.stderr.write(f"token {info.id} for {args.user}; it is shown only now\n")
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    import time

    for info in _tokens(args).list(args.user):
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.created))
        _say(f"{info.id}\t{info.user}\t{created}\t{info.label}")
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    if not _tokens(args).revoke(args.id):
        raise CliError(f"no token {args.id!r}")
    _say(f"revoked {args.id}")
    return 0


SERVE_FLAGS = ("maildir", "user", "password_file", "users", "public_url", "layout", "state_dir",
               "push_allow_private", "push_contact", "sieve_dir", "smarthost",
               "smarthost_tls", "smarthost_user", "host", "port")  # fmt: skip
SERVE_DEFAULTS: dict[str, object] = {
    "layout": "auto",
    "push_allow_private": False,
    "smarthost": "127.0.0.1:25",
    "smarthost_tls": "none",
    "host": "127.0.0.1",
    "port": 8080,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maildir-jmap", description=__doc__)
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def with_state(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--state-dir", help="where the index and tokens live (default: XDG state)")
        return p

    serve = with_state(sub.add_parser("serve", help="run the JMAP server"))
    serve.add_argument(
        "maildir", nargs="?", help="the Maildir to serve (default: ~/Maildir or a demo)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--user", help="login name (default: the Maildir owner's)")
    serve.add_argument("--password-file", help="file whose first line is the password")
    serve.add_argument("--users", help="users file (from `user add`) for several users")
    serve.add_argument("--public-url", help="base URL clients reach us at, for Session URLs")
    serve.add_argument("--layout", choices=["auto", "maildir++", "fs"], default="auto")
    serve.add_argument(
        "--push-allow-private",
        action="store_true",
        help="let PushSubscription URLs reach private/loopback addresses and plain http "
        "(a push relay on your own network); off by default",
    )
    serve.add_argument(
        "--push-contact", help="VAPID contact for push services (mailto: or https: URI)"
    )
    serve.add_argument(
        "--sieve-dir",
        help="offer VacationResponse, written as a Pigeonhole script into this directory "
        "({home} = the Maildir's parent, {user} = the login; e.g. '{home}/sieve')",
    )
    serve.add_argument(
        "--smarthost",
        default="127.0.0.1:25",
        help="SMTP server that relays sent mail, HOST:PORT (default: 127.0.0.1:25)",
    )
    serve.add_argument("--smarthost-tls", choices=["none", "starttls", "implicit"], default="none")
    serve.add_argument(
        "--smarthost-user", help="SMTP AUTH user (password: $MAILDIR_JMAP_SMTP_PASSWORD)"
    )
    serve.add_argument(
        "--config", help="TOML config file (see config.example.toml); replaces the flags"
    )
    serve.set_defaults(func=cmd_serve)

    check = sub.add_parser("check", help="validate a config file and what it points at")
    check.add_argument("--config", help="the TOML config file (default: the embedded defaults)")
    check.add_argument("--user", help="also look up this user and check their Maildir")
    check.set_defaults(func=cmd_check)

    example = sub.add_parser("config-example", help="print the documented example config")
    example.set_defaults(func=cmd_config_example)

    index = with_state(sub.add_parser("index", help="build or refresh a Maildir's index"))
    index.add_argument("maildir")
    index.add_argument("--user", help="the account's login name (default: the Maildir owner)")
    index.add_argument("--layout", choices=["auto", "maildir++", "fs"], default="auto")
    index.set_defaults(func=cmd_index)

    user = sub.add_parser("user", help="manage the users file").add_subparsers(
        dest="user_command", required=True
    )
    add = with_state(user.add_parser("add", help="add or update a user"))
    add.add_argument("name")
    add.add_argument("maildir")
    add.add_argument("--users", help="users file (default: STATE_DIR/users.toml)")
    add.add_argument("--password-file", help="file whose first line is the password")
    add.add_argument(
        "--address",
        action="append",
        default=[],
        help="an address the user may send from (repeatable; *@example.org for a domain)",
    )
    add.set_defaults(func=cmd_user_add)
    lst = with_state(user.add_parser("list", help="list users"))
    lst.add_argument("--users")
    lst.set_defaults(func=cmd_user_list)
    rm = with_state(user.add_parser("remove", help="remove a user"))
    rm.add_argument("name")
    rm.add_argument("--users")
    rm.set_defaults(func=cmd_user_remove)

    token = sub.add_parser("token", help="app tokens for Bearer auth").add_subparsers(
        dest="token_command", required=True
    )
    create = with_state(token.add_parser("create", help="issue a token for USER"))
    create.add_argument("user")
    create.add_argument("--label", default="")
    create.set_defaults(func=cmd_token_create)
    tlist = with_state(token.add_parser("list", help="list tokens"))
    tlist.add_argument("user", nargs="?")
    tlist.set_defaults(func=cmd_token_list)
    revoke = with_state(token.add_parser("revoke", help="revoke a token by id"))
    revoke.add_argument("id")
    revoke.set_defaults(func=cmd_token_revoke)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from maildir_jmap.logs import setup_logging

    setup_logging(args.log_level)
    try:
        result: int = args.func(args)
        return result
    except CliError as exc:
        sys.stderr.write(f"maildir-jmap: {exc}\n")
        return 2
