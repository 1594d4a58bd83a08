"""``maildir-jmap check``: what a config points at, verified one thing at a time,
each problem said in a sentence that names the file, socket or setting."""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

from maildir_jmap import dovecot_config
from maildir_jmap.config import Config
from maildir_jmap.delivery.smtp import Smarthost
from maildir_jmap.dovecot_auth import AuthUnavailable, Passdb, Userdb, auth_sockets
from maildir_jmap.dovecot_config import DovecotConfig, UserMail
from maildir_jmap.users import User, UsersFileError, load_users_file

Result = tuple[bool, str]


def _maildir(user: User) -> Iterator[Result]:
    path = user.maildir
    if not path.is_dir():
        yield False, f"{user.name}: Maildir {path} does not exist"
        return
    missing = [d for d in ("cur", "new", "tmp") if not (path / d).is_dir()]
    if missing:
        yield False, f"{user.name}: {path} has no {', '.join(missing)}: not a Maildir"
    elif not os.access(path, os.R_OK | os.X_OK):
        yield False, f"{user.name}: {path} is not readable by uid {os.geteuid()}"
    elif not os.access(path / "cur", os.W_OK):
        yield True, f"{user.name}: {path} is read-only for uid {os.geteuid()}: served read-only"
    else:
        yield True, f"{user.name}: Maildir {path}"


def _state_dir(config: Config) -> Result:
    path = config.state_dir
    probe = path if path.exists() else next((p for p in path.parents if p.exists()), Path("/"))
    if not os.access(probe, os.W_OK | os.X_OK):
        return False, f"state directory {path} is not writable by uid {os.geteuid()}"
    return True, f"state directory {path}"


def _dovecot_config(config: Config) -> Iterator[Result | DovecotConfig]:
    try:
        dovecot = dovecot_config.read(config.dovecot_config)
    except dovecot_config.DovecotConfigError as exc:
        yield False, str(exc)
        return
    where = config.dovecot_config or "doveconf's default"
    if dovecot is None:
        yield True, "Dovecot's config: not readable here (doveconf not installed)"
        return
    namespace = dovecot.namespace
    plugins = sorted(dovecot.plugins & {"quota", "listescape"})
    yield (
        True,
        (
            f"Dovecot's config ({where}): mail_location {dovecot.mail_location or '(none)'}, "
            f"INBOX namespace prefix {namespace.prefix!r} "
            f"separator {namespace.separator or 'default'!r}, "
            f"plugins {', '.join(plugins) or 'none of quota, listescape'}"
        ),
    )
    yield dovecot


def _dovecot(config: Config, user: str | None, dovecot: DovecotConfig | None) -> Iterator[Result]:
    client, userdb = auth_sockets(config, dovecot)
    for path in (client, userdb):
        if not path.exists():
            yield False, f"Dovecot socket {path} does not exist (is Dovecot running?)"
            return
        if not os.access(path, os.R_OK | os.W_OK):
            yield False, f"Dovecot socket {path} is not accessible to uid {os.geteuid()}"
            return
    try:
        Passdb(client).authenticate("\x01check", "")
        yield True, f"Dovecot auth at {client} answers"
    except AuthUnavailable as exc:
        yield False, f"Dovecot auth at {client}: {exc}"
    if user is None:
        return
    try:
        fields = Userdb(userdb, config.dovecot_service).lookup(user)
    except AuthUnavailable as exc:
        yield False, f"Dovecot userdb at {userdb}: {exc}"
        return
    if fields is None:
        yield False, f"Dovecot's userdb does not know {user}"
        return
    mail = (dovecot or DovecotConfig()).for_user({"user": user, **fields}, config.mail_location)
    yield from _derived(user, mail)


def _derived(user: str, mail: UserMail) -> Iterator[Result]:
    """What the server derives for one user, said in one line per part."""
    if mail.unusable is not None:
        yield False, f"{user}: cannot be served: {mail.unusable}"
        return
    if mail.maildir is None:
        yield False, f"{user}: no Maildir location (neither userdb mail= nor mail_location)"
        return
    yield (
        True,
        (
            f"{user}: Maildir {mail.maildir}, layout {mail.layout or 'detected'}, "
            f"home {mail.home or '(none: the Maildir parent)'}"
        ),
    )
    if mail.sieve is not None:
        yield True, f"{user}: Sieve scripts in {mail.sieve.directory}, active {mail.sieve.active}"
    else:
        yield True, f"{user}: no Sieve location (VacationResponse off unless sieve_dir is set)"
    quota = mail.quota
    if quota is not None:
        limits = [
            f"{quota.bytes} octets" if quota.bytes else "",
            f"{quota.messages} messages" if quota.messages else "",
        ]
        shown = " and ".join(x for x in limits if x) or "unlimited"
        yield True, f"{user}: quota {quota.name!r} ({quota.backend} backend): {shown}"
    if mail.escape is not None:
        yield True, f"{user}: folder names escaped with {mail.escape!r} (listescape)"
    if mail.maildir.exists():
        yield from _maildir(User(mail.login or user, mail.maildir, ""))
    else:
        yield True, f"{user}: Maildir {mail.maildir} does not exist yet: created at first login"


def _tls(config: Config) -> Result | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        return False, f"TLS certificate {config.tls_cert} / key {config.tls_key}: {exc}"
    return True, f"TLS certificate {config.tls_cert}"


def _smarthost(config: Config) -> Result:
    host = config.sending.smarthost
    try:
        with socket.create_connection((host.host, host.port), timeout=3):
            return True, f"SMTP smarthost {host.host}:{host.port} accepts connections"
    except OSError as exc:
        if host == Smarthost():
            # Not configured and nothing on port 25 here: a machine without sending
            # is fine (issue 17); EmailSubmission is then retried until one listens.
            return True, (
                f"sending is off: nothing listens on {host.host}:{host.port} "
                "(set submission.smarthost to send mail)"
            )
        return False, f"SMTP smarthost {host.host}:{host.port}: {exc.strerror or exc}"


def check(config: Config, user: str | None = None) -> Iterator[Result]:
    yield _state_dir(config)
    tls = _tls(config)
    if tls is not None:
        yield tls
    if config.public_url and not config.public_url.startswith(("http://", "https://")):
        yield False, f"server.public_url {config.public_url!r} is not an http(s) URL"
    dovecot: DovecotConfig | None = None
    for result in _dovecot_config(config):
        if isinstance(result, DovecotConfig):
            dovecot = result
        else:
            yield result
    if config.auth_backend == "dovecot":
        yield from _dovecot(config, user, dovecot)
    elif config.users_file is not None:
        try:
            users = load_users_file(config.users_file)
        except UsersFileError as exc:
            yield False, str(exc)
        else:
            yield True, f"users file {config.users_file}: {len(users)} user(s)"
            for entry in users.values():
                if user is None or entry.name == user:
                    yield from _maildir(entry)
    else:
        yield True, "no users file: one user, the owner of ~/Maildir (embedded mode)"
    for template in (config.sieve_dir, config.sieve_active if config.sieve_dir else None):
        if template is not None:
            try:
                template.format(home="h", user="u")
            except (KeyError, IndexError, ValueError):
                yield False, f"sieve path {template!r} may use only {{home}} and {{user}}"
    yield _smarthost(config)
