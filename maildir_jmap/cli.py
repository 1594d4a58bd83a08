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

from maildir_jmap import __version__
from maildir_jmap.admin import (
    PASSWORD_ENV,
    cmd_token_create,
    cmd_token_list,
    cmd_token_revoke,
    cmd_user_add,
    cmd_user_list,
    cmd_user_remove,
)
from maildir_jmap.config import Config, problems
from maildir_jmap.console import CliError, ProgressBar, first_line, say, state_dir_of
from maildir_jmap.delivery.scheduler import SendingSettings
from maildir_jmap.delivery.smtp import Smarthost
from maildir_jmap.runas import become_owner, serve_as_owner
from maildir_jmap.users import (
    User,
    UserDirectory,
    UsersFileError,
    hash_password,
    load_users_file,
    valid_username,
    write_private_file,
)

log = logging.getLogger(__name__)


def _owner_name(path: Path) -> str:
    uid = path.stat().st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _embedded_password(args: argparse.Namespace, state_dir: Path, user: str) -> str:
    """--password-file, else $MAILDIR_JMAP_PASSWORD, else one generated on the first
    start, kept in the state directory (mode 0600) and printed that once."""
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
    say(f"maildir-jmap: log in as {user!r} with password {password!r} (kept in {saved})")
    return password


def _embedded_maildir(args: argparse.Namespace, state_dir: Path) -> Path:
    if args.maildir:
        maildir = Path(args.maildir).expanduser()
        if not maildir.is_dir():
            raise CliError(f"{maildir} is not a directory")
        missing = [d for d in ("cur", "new", "tmp") if not (maildir / d).is_dir()]
        if missing:
            # Watching an arbitrary tree (serve /tmp) would overflow inotify (issue 17).
            raise CliError(f"{maildir} is not a Maildir (no {', '.join(missing)})")
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
    from maildir_jmap import dovecot_config, serve

    if args.config:
        given = [f for f in SERVE_FLAGS if getattr(args, f) != SERVE_DEFAULTS.get(f)]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise CliError(f"--config replaces {flag}: set it in the file (or the environment)")
        config = _load_config(args.config)
        config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            dovecot = dovecot_config.read(config.dovecot_config)
        except dovecot_config.DovecotConfigError as exc:
            raise CliError(str(exc)) from None
        users = serve.users_for(config, lambda: _directory(args, config.state_dir), dovecot)
    else:
        if args.maildir and args.state_dir:  # before anything is made in either
            inside = Path(args.state_dir).expanduser().resolve()
            if inside.is_relative_to(Path(args.maildir).expanduser().resolve()):
                raise CliError(f"the state directory {inside} must not be inside {args.maildir}")
        state_dir = state_dir_of(args)
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
            layout=args.layout,
            dovecot_config=_path(args.dovecot_config),
            sending=sending_settings(args),
        )
        wrong = problems(config)
        if wrong:
            flags = {"server.port": "--port", "server.public_url": "--public-url"}
            text = "; ".join(wrong)
            for key, flag in flags.items():
                text = text.replace(key, flag)
            raise CliError(text)
    serve_as_owner(config, users)
    for name in users.names():
        user = users.get(name)
        assert user is not None
        log.info("serving %s from %s", name, user.maildir)
    scheme = "https" if config.tls_cert else "http"
    say(f"maildir-jmap: JMAP session at {scheme}://{config.host}:{config.port}/.well-known/jmap")
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
        say(("ok       " if ok else "PROBLEM  ") + message)
        problems += not ok
    say(f"{problems} problem(s)" if problems else "all checks passed")
    return 1 if problems else 0


def cmd_config_example(args: argparse.Namespace) -> int:
    from maildir_jmap.config_file import example

    sys.stdout.write(example())
    return 0


DOVECOT_CONFIG_HELP = (
    "Dovecot's dovecot.conf: mail location, roles, quota, Sieve, listescape "
    "(default: doveconf's, /etc/dovecot/dovecot.conf)"
)


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


def cmd_index(args: argparse.Namespace) -> int:
    """Build or refresh the index of one Maildir, the way the server would."""
    import time

    from maildir_jmap import dovecot_config
    from maildir_jmap.store.account import Account
    from maildir_jmap.store.names import LAYOUTS

    maildir = Path(args.maildir).expanduser()
    if not maildir.is_dir():
        raise CliError(f"{maildir} is not a directory")
    maildir = maildir.resolve()
    become_owner(Path(args.state_dir).expanduser() if args.state_dir else None, maildir)
    state_dir = state_dir_of(args)
    user = args.user or _owner_name(maildir)
    try:
        dovecot = dovecot_config.read(_path(args.dovecot_config))
    except dovecot_config.DovecotConfigError as exc:
        raise CliError(str(exc)) from None
    mail = dovecot.for_user({"user": user, "home": str(maildir.parent)}) if dovecot else None
    bar = ProgressBar()
    started = time.monotonic()
    account = Account.open(
        user,
        maildir,
        state_dir,
        layout=LAYOUTS.get(args.layout),
        roles=dovecot.namespace.mailboxes.roles if dovecot else None,
        progress=bar,
        escape=mail.escape if mail else None,
    )
    account.compact()
    account.sync_search()
    bar.close()
    elapsed = time.monotonic() - started
    index = account.index
    messages = len(index.emails)
    rate = messages / elapsed if elapsed > 0 else 0.0
    say(
        f"indexed {maildir} for {user}: {messages} messages, {len(index.mailboxes)} folders, "
        f"{len(index.threads)} threads in {elapsed:.1f} s ({rate:.0f} messages/s); "
        f"index at {account.journal.directory}"
    )
    account.close()
    return 0


SERVE_FLAGS = ("maildir", "user", "password_file", "users", "public_url", "layout", "state_dir",
               "push_allow_private", "push_contact", "sieve_dir", "smarthost",
               "smarthost_tls", "smarthost_user", "host", "port", "dovecot_config")  # fmt: skip
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
    parser.add_argument("--version", action="version", version=f"maildir-jmap {__version__}")
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
        "({home} = the userdb's home, else the Maildir's parent; {user} = the login; "
        "e.g. '{home}/sieve')",
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
    serve.add_argument("--dovecot-config", help=DOVECOT_CONFIG_HELP)
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
    index.add_argument("--dovecot-config", help=DOVECOT_CONFIG_HELP)
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
    create.add_argument("--users", help="the users file (default: STATE_DIR/users.toml)")
    create.add_argument(
        "--dovecot", action="store_true", help="users come from Dovecot's auth: any login"
    )
    create.set_defaults(func=cmd_token_create)
    tlist = with_state(token.add_parser("list", help="list tokens"))
    tlist.add_argument("user", nargs="?")
    tlist.set_defaults(func=cmd_token_list)
    revoke = with_state(token.add_parser("revoke", help="revoke a token by id"))
    revoke.add_argument("id")
    revoke.set_defaults(func=cmd_token_revoke)
    return parser


def _log_level_first(argv: Sequence[str]) -> list[str]:
    """``--log-level`` is taken wherever it is given (``serve --log-level DEBUG``
    too, issue 17), by moving it in front of the subcommand."""
    rest = list(argv)
    front: list[str] = []
    for i, arg in enumerate(rest):
        if arg == "--log-level" and i + 1 < len(rest):
            front = rest[i : i + 2]
            del rest[i : i + 2]
            break
        if arg.startswith("--log-level="):
            front = [rest.pop(i)]
            break
    return front + rest


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(_log_level_first(sys.argv[1:] if argv is None else argv))
    from maildir_jmap.logs import setup_logging

    setup_logging(args.log_level)
    try:
        result: int = args.func(args)
        return result
    except CliError as exc:
        sys.stderr.write(f"maildir-jmap: {exc}\n")
        return 2
