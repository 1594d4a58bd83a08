"""``maildir-jmap serve``: the settings (defaults, the TOML file, the
environment, then the flags), the checks that answer an admin's mistake in one
line (preflight.py), the users from the configured backend, uvicorn with TLS
when configured on a socket bound first, and systemd's readiness protocol
(``Type=notify``: ``READY=1`` once the accounts are open and the socket
listens, ``RELOADING=1`` on SIGHUP (reload.py), ``STOPPING=1`` on SIGTERM,
after which open streams get a few seconds and journals are flushed by the
app's lifespan)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import anyio.to_thread
import uvicorn

from maildir_jmap import config_file, embedded, preflight
from maildir_jmap.config import Config, problems
from maildir_jmap.console import NO_HOME, CliError, say, writable_state_dir
from maildir_jmap.dovecot_auth import DovecotUsers, Passdb, Userdb, auth_sockets
from maildir_jmap.dovecot_config import DovecotConfig, parse_mail_location
from maildir_jmap.users import Users

log = logging.getLogger(__name__)

FLAG_SETTINGS: dict[str, tuple[str, str]] = {
    "host": ("server", "host"),
    "port": ("server", "port"),
    "public_url": ("server", "public_url"),
    "state_dir": ("server", "state_dir"),
    "users": ("auth", "users_file"),
    "layout": ("mail", "layout"),
    "dovecot_config": ("mail", "dovecot_config"),
    "sieve_dir": ("mail", "sieve_dir"),
    "push_allow_private": ("push", "allow_private_targets"),
    "push_contact": ("push", "contact"),
    "smarthost": ("submission", "smarthost"),
    "smarthost_tls": ("submission", "tls"),
    "smarthost_user": ("submission", "username"),
}
"""serve's flags and the settings they give: flags, the TOML file and
``MAILDIR_JMAP_<SECTION>_<KEY>`` go through one schema (config_file.py)."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def settings(args: argparse.Namespace) -> Config:
    """The defaults, then ``--config``'s file, then the environment, then the flags
    (which ``--config`` replaces); validated once, each problem named by the
    flag or the key it came from."""
    given = {f: getattr(args, f) for f in FLAG_SETTINGS if getattr(args, f, None) is not None}
    if args.config and given:
        flag = _flag(next(iter(given)))
        raise CliError(f"--config replaces {flag}: set it in the file (or the environment)")
    path = Path(args.config).expanduser() if args.config else None
    try:
        values = config_file.read(path)
        for flag, value in given.items():
            setting = config_file.BY_NAME[FLAG_SETTINGS[flag]]
            values[FLAG_SETTINGS[flag]] = config_file.convert(setting, value, _flag(flag))
        config = config_file.to_config(values)
    except config_file.ConfigError as exc:
        raise CliError(str(exc)) from None
    except RuntimeError:  # the default state directory needs a home
        raise CliError(NO_HOME) from None
    _state_outside_maildirs(config, args.maildir)  # before anything is made in either
    wrong = problems(config)
    if wrong:
        text = "; ".join(wrong)
        for flag in given:
            section, key = FLAG_SETTINGS[flag]
            text = text.replace(f"{section}.{key}", _flag(flag))
        for setting in config_file.SETTINGS:  # name what the admin actually set
            if setting.env in os.environ:
                text = text.replace(f"{setting.section}.{setting.key}", setting.env)
        raise CliError((f"{path}: " if path else "") + text)
    return config


def _state_outside_maildirs(config: Config, maildir: str | None) -> None:
    """The state directory inside a served Maildir would be taken for a folder
    (fs layout) and is Dovecot's to list: refused, whichever way it was given."""
    from maildir_jmap.users import UsersFileError, load_users_file

    roots = [Path(maildir).expanduser()] if maildir else []
    if config.users_file is not None:
        with contextlib.suppress(UsersFileError):  # said in one line when users load
            roots += [user.maildir for user in load_users_file(config.users_file).values()]
    state = config.state_dir.expanduser().resolve()
    for root in roots:
        if state.is_relative_to(root.resolve()):
            raise CliError(f"the state directory {state} must not be inside {root}")


def cmd_serve(args: argparse.Namespace) -> int:
    """Check, bind, then serve: every mistake found here is one line (issue 17)."""
    from maildir_jmap import dovecot_config

    config = settings(args)
    if args.log_level is not None:  # the flag wins over server.log_level
        config = replace(config, log_level=args.log_level)
    logging.getLogger().setLevel(config.log_level)
    writable_state_dir(config.state_dir)
    preflight.tls(config)
    if args.maildir:
        preflight.maildir(Path(args.maildir).expanduser())
    try:
        dovecot = dovecot_config.read(config.dovecot_config)
    except dovecot_config.DovecotConfigError as exc:
        raise CliError(str(exc)) from None
    sock = preflight.listen(config.host, config.port)  # before a password is shown
    try:
        users = _ready_users(args, config, dovecot)
        scheme = "https" if config.tls_cert else "http"
        shown = "localhost" if config.host in ("0.0.0.0", "::") else config.host  # noqa: S104
        say(f"maildir-jmap: JMAP session at {scheme}://{shown}:{config.port}/.well-known/jmap")
        return run(args, config, users, sock, dovecot)
    finally:
        sock.close()


def _ready_users(args: argparse.Namespace, config: Config, dovecot: DovecotConfig | None) -> Users:
    """The users, once we run as their Maildirs' owner and can read those."""
    from maildir_jmap.runas import serve_as_owner

    def embedded_users() -> Users:
        return embedded.directory(args, config.state_dir, config.users_file)

    users = users_for(config, embedded_users, dovecot)
    serve_as_owner(config, users, dovecot)
    writable_state_dir(config.state_dir)  # as whom we now are
    preflight.maildirs(users)
    for name in users.names():
        user = users.get(name)
        assert user is not None
        log.info("serving %s from %s", name, user.maildir)
    return users


def sd_notify(message: str) -> bool:
    """Send ``message`` to systemd's notify socket, if we run under one."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError as exc:
        log.warning("cannot notify systemd at %s: %s", address, exc)
        return False
    return True


def users_for(
    config: Config, embedded: Callable[[], Users], dovecot: DovecotConfig | None = None
) -> Users:
    """The configured user directory; ``embedded`` makes the one-user default.
    With Dovecot's auth, its sockets, mail location and per-user settings come
    from ``dovecot`` (its effective config) unless our config names them."""
    if config.auth_backend == "dovecot":
        for location in (config.mail_location, dovecot.mail_location if dovecot else ""):
            if location:
                parse_mail_location(location)  # refused keys stop the start
        client, userdb = auth_sockets(config, dovecot)
        return DovecotUsers(
            Passdb(client, config.dovecot_service),
            Userdb(userdb, config.dovecot_service),
            config.mail_location,
            dovecot,
        )
    return embedded()


class NotifyingServer(uvicorn.Server):
    """uvicorn, telling systemd where it stands, and reloading on SIGHUP."""

    reload: Callable[[], object] | None = None
    _reloading: asyncio.Future[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            if self.reload is not None:  # before READY=1: a reload may follow at once
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._reload)
            sd_notify("READY=1\nSTATUS=serving JMAP")

    def _reload(self) -> None:
        async def reload() -> None:
            now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            sd_notify(f"RELOADING=1\nMONOTONIC_USEC={now}")
            try:
                assert self.reload is not None
                await anyio.to_thread.run_sync(self.reload)
            except Exception:
                log.exception("reload failed")
            sd_notify("READY=1\nSTATUS=serving JMAP")

        self._reloading = asyncio.ensure_future(reload())

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        sd_notify("STOPPING=1")
        await super().shutdown(sockets)


def run(
    args: argparse.Namespace,
    config: Config,
    users: Users,
    sock: socket.socket,
    dovecot: DovecotConfig | None,
) -> int:
    from maildir_jmap.http.app import OneLineStartupError, create_app
    from maildir_jmap.logs import UVICORN_LOGGING, set_level
    from maildir_jmap.reload import Reloader

    app = create_app(config, users, dovecot=dovecot)
    server_config = uvicorn.Config(
        OneLineStartupError(app),
        log_config=UVICORN_LOGGING,  # our handlers: journal priorities for its lines too
        log_level=config.log_level.lower(),
        # Event streams never end by themselves: a few seconds on SIGTERM, then
        # they are closed; the lifespan stops watchers and flushes journals.
        timeout_graceful_shutdown=3,
        ssl_certfile=str(config.tls_cert) if config.tls_cert else None,
        ssl_keyfile=str(config.tls_key) if config.tls_key else None,
        # X-Forwarded-* are judged by the app against trusted_proxies (http/proxy.py).
        proxy_headers=False,
        server_header=False,
    )
    server_config.load()
    server = NotifyingServer(server_config)
    fixed_level = args.log_level is not None  # --log-level wins over the file
    server.reload = Reloader(
        args,
        settings,
        app.state.server,
        server_config.ssl,
        (lambda level: None) if fixed_level else set_level,
    )
    try:
        server.run(sockets=[sock])
    except SystemExit as exc:  # uvicorn's own exit when the app could not start
        if exc.code not in (0, None):
            return 1
    return 0 if server.started else 1
