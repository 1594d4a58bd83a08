"""maildir-jmap: a JMAP server (RFC 8620/8621) for the Maildirs Dovecot serves.

Commands:
  serve           run the server (no arguments: ~/Maildir, else a demo Maildir)
  check           validate the settings and what they point at, without serving
  index           build or refresh one Maildir's index before the first start
  user, token     manage the users file and app tokens (Bearer auth)
  config-example  print every setting, documented, at its default

Settings come from --config FILE (TOML), MAILDIR_JMAP_<SECTION>_<KEY>
environment variables and the flags of serve, in that order. Exit status: 0 ok,
1 check found problems or the server could not keep running, 2 a mistake in the
command or the settings (said in one line).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from maildir_jmap import __version__, preflight
from maildir_jmap.admin import (
    cmd_token_create,
    cmd_token_list,
    cmd_token_revoke,
    cmd_user_add,
    cmd_user_list,
    cmd_user_remove,
)
from maildir_jmap.config import Config
from maildir_jmap.console import CliError, ProgressBar, say, state_dir_of
from maildir_jmap.embedded import owner_name
from maildir_jmap.runas import become_owner

log = logging.getLogger(__name__)
LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


def _load_config(path: str | None) -> Config:
    from maildir_jmap.config_file import ConfigError, load

    try:
        return load(Path(path).expanduser() if path else None)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def cmd_check(args: argparse.Namespace) -> int:
    from maildir_jmap.check import check

    config = _load_config(args.config)
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
    from maildir_jmap.store.owner import AccountOwned

    maildir = Path(args.maildir).expanduser()
    if not maildir.is_dir():
        raise CliError(f"{maildir} is not a directory")
    maildir = maildir.resolve()
    become_owner(Path(args.state_dir).expanduser() if args.state_dir else None, maildir)
    preflight.maildir(maildir)
    state_dir = state_dir_of(args)
    user = args.user or owner_name(maildir)
    try:
        dovecot = dovecot_config.read(_path(args.dovecot_config))
    except dovecot_config.DovecotConfigError as exc:
        raise CliError(str(exc)) from None
    mail = dovecot.for_user({"user": user, "home": str(maildir.parent)}) if dovecot else None
    bar = ProgressBar()
    started = time.monotonic()
    try:
        account = Account.open(
            user,
            maildir,
            state_dir,
            layout=LAYOUTS.get(args.layout),
            roles=dovecot.namespace.mailboxes.roles if dovecot else None,
            progress=bar,
            escape=mail.escape if mail else None,
        )
    except AccountOwned as exc:
        raise CliError(f"{exc}; the server keeps the index up to date itself") from None
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maildir-jmap",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--log-level", choices=LEVELS, help="default: server.log_level, else INFO")
    parser.add_argument("--version", action="version", version=f"maildir-jmap {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_state(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--state-dir", help="where the index and tokens live (default: XDG state directory)"
        )
        return p

    from maildir_jmap.serve import cmd_serve

    serve = with_state(sub.add_parser("serve", help="run the JMAP server"))
    serve.add_argument(
        "maildir", nargs="?", help="the Maildir to serve (default: ~/Maildir, else a demo)"
    )
    serve.add_argument("--host", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: 8080)")
    serve.add_argument("--user", help="login name (default: the Maildir owner's)")
    serve.add_argument("--password-file", help="file whose first line is the password")
    serve.add_argument("--users", help="users file (from `user add`) for several users")
    serve.add_argument("--public-url", help="base URL clients reach us at, for Session URLs")
    serve.add_argument(
        "--layout", choices=["auto", "maildir++", "fs"], help="Maildir layout (default: auto)"
    )
    serve.add_argument(
        "--push-allow-private",
        action="store_const",
        const=True,
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
        "--smarthost", help="SMTP server that relays sent mail, HOST:PORT (default: 127.0.0.1:25)"
    )
    serve.add_argument(
        "--smarthost-tls", choices=["none", "starttls", "implicit"], help="default: none"
    )
    serve.add_argument(
        "--smarthost-user", help="SMTP AUTH user (password: $MAILDIR_JMAP_SMTP_PASSWORD)"
    )
    serve.add_argument("--dovecot-config", help=DOVECOT_CONFIG_HELP)
    serve.add_argument(
        "--config", help="TOML config file (`config-example` prints one); replaces the flags"
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

    setup_logging(args.log_level or _environment_log_level())
    try:
        result: int = args.func(args)
        return result
    except CliError as exc:
        sys.stderr.write(f"{_error_priority()}maildir-jmap: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a last resort: one line, the traceback at DEBUG
        log.debug("unexpected error", exc_info=True)
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        where = f" ({exc.filename})" if isinstance(exc, OSError) and exc.filename else ""
        sys.stderr.write(
            f"{_error_priority()}maildir-jmap: {type(exc).__name__}: {detail}{where} "
            "(--log-level DEBUG shows where)\n"
        )
        return 1


def _error_priority() -> str:
    """Under systemd, the journal priority prefix that makes ``journalctl -p err``
    show why the service did not start (sd-daemon(3))."""
    return "<3>" if os.environ.get("JOURNAL_STREAM") else ""


def _environment_log_level() -> str:
    level = os.environ.get("MAILDIR_JMAP_SERVER_LOG_LEVEL", "INFO").upper()
    return level if level in LEVELS else "INFO"
