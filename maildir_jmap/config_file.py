"""The TOML config file: one table of settings, each with its section, type,
default (the embedded mode's) and documentation. The same table loads a file,
applies ``MAILDIR_JMAP_<SECTION>_<KEY>`` environment overrides, and renders the
documented example (``config.example.toml``), so the three cannot drift apart.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maildir_jmap.config import Config, default_state_dir, problems
from maildir_jmap.delivery.scheduler import SendingSettings
from maildir_jmap.delivery.smtp import Smarthost

ENV_PREFIX = "MAILDIR_JMAP_"
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class ConfigError(ValueError):
    """A setting is unknown, of the wrong type or out of range."""


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    kind: str
    """str, int, float, bool, path, list, or choice:a|b|c; "?" suffix: may be empty."""
    default: Any
    doc: str

    @property
    def env(self) -> str:
        return f"{ENV_PREFIX}{self.section}_{self.key}".upper()


DAY = 24 * 3600
SETTINGS = (
    Setting("server", "host", "str", "127.0.0.1", "Address to listen on."),
    Setting("server", "port", "int", 8080, "Port to listen on."),
    Setting("server", "public_url", "str?", "",
            "Base URL clients reach us at, e.g. https://mail.example.org (Session URLs are "
            "built from it). Empty: from each request, honouring trusted proxies."),
    Setting("server", "state_dir", "path?", "",
            "Index, uploads, tokens, outbox: outside every Maildir, writable by the server. "
            "Empty: $XDG_STATE_HOME/maildir-jmap; a system service uses /var/lib/maildir-jmap."),
    Setting("server", "tls_cert", "path?", "",
            "Serve HTTPS directly: certificate chain (PEM). Empty: plain HTTP (put a proxy "
            "with TLS in front)."),
    Setting("server", "tls_key", "path?", "", "Private key (PEM) for tls_cert."),
    Setting("server", "trusted_proxies", "list", [],
            "Reverse proxies whose X-Forwarded-Proto/-For/-Host headers are believed, e.g. "
            '["127.0.0.1"].'),
    Setting("server", "log_level", "choice:DEBUG|INFO|WARNING|ERROR", "INFO",
            "Log level (--log-level wins); SIGHUP re-reads it."),
    Setting("server", "metrics_from", "list", ["127.0.0.1/32", "::1/128"],
            "Networks allowed to read /metrics (Prometheus text format)."),
    Setting("auth", "backend", "choice:users-file|dovecot", "users-file",
            '"dovecot": check passwords with Dovecot\'s auth service and find Maildirs '
            'through its userdb; "users-file": our own file (maildir-jmap user add).'),
    Setting("auth", "users_file", "path?", "",
            'The users file for backend = "users-file". Empty: one user, the owner of '
            "~/Maildir (or of a demo Maildir), as `maildir-jmap serve` does."),
    Setting("auth", "dovecot_auth_socket", "path?", "",
            "Dovecot's auth-client socket (the server's user must be able to connect); "
            "empty: auth-client in Dovecot's base_dir (doveconf), /run/dovecot by default."),
    Setting("auth", "dovecot_userdb_socket", "path?", "",
            "Dovecot's auth-userdb socket, for home and mail location lookups; "
            "empty: auth-userdb in Dovecot's base_dir."),
    Setting("auth", "service", "str", "jmap", "Service name Dovecot's passdb and userdb see."),
    Setting("auth", "mail_location", "str?", "",
            "Only when neither the userdb (mail=) nor Dovecot's config (mail_location) "
            "gives one: a location like maildir:~/Maildir (%u user, %n local part, "
            "%d domain, %h or ~ home)."),
    Setting("auth", "max_failures_per_user", "int", 5,
            "Failed logins for one user name in 15 minutes after which each further failed "
            "answer for it is held 2, 4, 8, then 15 s. The right password is answered at "
            "once: nobody can lock a user out."),
    Setting("auth", "max_failures_per_address", "int", 20,
            "Failed logins from one client address in 15 minutes before it gets 429; "
            "before that its attempts are held 2, 4, 8, then 15 s (Dovecot's auth penalty)."),
    Setting("auth", "throttle", "bool", True,
            "Throttle failed logins ourselves; false leaves it to Dovecot's auth penalty "
            '(backend = "dovecot" passes it the client address).'),
    Setting("mail", "layout", "choice:auto|maildir++|fs", "auto",
            "Maildir layout; auto detects it per Maildir."),
    Setting("mail", "dovecot_config", "path?", "",
            "Dovecot's dovecot.conf, read with doveconf -n: mail location, homes, "
            "special_use roles, autocreated mailboxes, quota, the Sieve location, "
            "listescape and the auth sockets (empty: /etc/dovecot/dovecot.conf)."),
    Setting("mail", "watch", "bool", True, "Follow Dovecot's changes as they happen (inotify)."),
    Setting("mail", "rescan_interval", "float", 300.0,
            "Seconds between full rescans that catch anything the watcher missed."),
    Setting("mail", "upload_expiry", "float", float(DAY),
            "Seconds an upload no Email refers to is kept."),
    Setting("mail", "account_state", "str?", "",
            "Each account's state beside the user's mail, e.g. {home}/.maildir-jmap "
            "({home}: the userdb's home, {user}: the login), so it moves with the home; "
            "state_dir/accounts/<id> links to it. Empty: in state_dir."),
    Setting("mail", "idle_close", "float", 1800.0,
            "Seconds without requests before an account is closed (reopened on demand); 0: never."),
    Setting("mail", "mail_domain", "str?", "",
            "Domain for logins that are not addresses (alice -> alice@domain). Empty: host name."),
    Setting("mail", "sieve_dir", "str?", "",
            "Offer VacationResponse, written as a Pigeonhole script into this directory "
            "({home} = the userdb's home, else the Maildir's parent; {user} = login), "
            "e.g. \"{home}/sieve\"."),
    Setting("mail", "sieve_active", "str", "{home}/.dovecot.sieve",
            "Pigeonhole's active-script link (its active= setting)."),
    Setting("submission", "smarthost", "str", "127.0.0.1:25",
            "SMTP relay for sent mail, HOST:PORT."),
    Setting("submission", "tls", "choice:none|starttls|implicit", "none",
            "starttls for port 587, implicit for 465."),
    Setting("submission", "username", "str?", "", "SMTP AUTH user; empty: no AUTH."),
    Setting("submission", "password_file", "path?", "",
            "File whose first line is the SMTP AUTH password."),
    Setting("submission", "max_delayed_send", "int", 7 * DAY,
            "Longest FUTURERELEASE hold in seconds (maxDelayedSend)."),
    Setting("submission", "max_size", "int", 25_000_000, "Largest message sent, in bytes."),
    Setting("submission", "max_recipients", "int", 100, "Most recipients per submission."),
    Setting("push", "allow_private_targets", "bool", False,
            "Let PushSubscription URLs reach private/loopback addresses and plain http."),
    Setting("push", "contact", "str?", "",
            "VAPID contact (mailto: or https: URI) push services see."),
    Setting("push", "max_lifetime", "float", float(7 * DAY),
            "Longest PushSubscription lifetime in seconds."),
    Setting("push", "vapid_key_file", "path?", "",
            "VAPID private key (PEM) for Web Push, made if missing; backends sharing "
            "users share one. Empty: vapid-key.pem in state_dir."),
    Setting("route", "backends", "list", [],
            'Backends (HOST:PORT) users are spread over when Dovecot\'s passdb gives no '
            'host=, e.g. ["10.0.0.11:8080", "10.0.0.12:8080"]; /jmap/route answers nginx\'s '
            "auth_request with the user's one. Empty: no route lookup."),
    Setting("route", "port", "int", 8080,
            "JMAP port of a backend the passdb names by host= without port=."),
)  # fmt: skip
BY_NAME = {(s.section, s.key): s for s in SETTINGS}


def convert(setting: Setting, value: Any, source: str) -> Any:
    kind = setting.kind.rstrip("?")
    where = f"{source}: {setting.section}.{setting.key}"
    if setting.kind.endswith("?") and value in ("", None):
        return None
    if kind == "bool":
        if isinstance(value, str) and value.lower() in (
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        ):
            return value.lower() in ("1", "true", "yes", "on")
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false")
        return value
    if kind in ("int", "float"):
        if isinstance(value, str):
            try:
                value = int(value) if kind == "int" else float(value)
            except ValueError:
                raise ConfigError(f"{where} must be a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number")
        if kind == "int" and not isinstance(value, int):
            raise ConfigError(f"{where} must be a whole number")
        if value < 0:
            raise ConfigError(f"{where} must not be negative")
        return value if kind == "int" else float(value)
    if kind == "list":
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings")
        return tuple(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string")
    if kind.startswith("choice:"):
        choices = kind[7:].split("|")
        if value not in choices:
            raise ConfigError(f"{where} must be one of {', '.join(choices)}")
    if kind == "path":
        return Path(value).expanduser()
    return value


def read(path: Path | None, environ: Mapping[str, str] = os.environ) -> dict[tuple[str, str], Any]:
    """Every setting's value: the default, then the file, then the environment."""
    values = {(s.section, s.key): convert(s, s.default, "default") for s in SETTINGS}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        for section, table in data.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: {section} must be a [section]")
            for key, value in table.items():
                setting = BY_NAME.get((section, key))
                if setting is None:
                    raise ConfigError(f"{path}: unknown setting {section}.{key}")
                values[(section, key)] = convert(setting, value, str(path))
    for setting in SETTINGS:
        if setting.env in environ:
            values[(setting.section, setting.key)] = convert(
                setting, environ[setting.env], setting.env
            )
    unknown = [k for k in environ if k.startswith(ENV_PREFIX) and k not in ENVIRONMENT_NAMES]
    if unknown:
        raise ConfigError(f"unknown environment setting {unknown[0]}")
    return values


ENVIRONMENT_NAMES = {s.env for s in SETTINGS} | {
    "MAILDIR_JMAP_PASSWORD",
    "MAILDIR_JMAP_SMTP_PASSWORD",
}


def to_config(values: Mapping[tuple[str, str], Any]) -> Config:
    def v(section: str, key: str) -> Any:
        return values[(section, key)]

    host, _, port = str(v("submission", "smarthost")).rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError("submission.smarthost must be HOST:PORT")
    password = None
    if v("submission", "password_file") is not None:
        try:
            password = v("submission", "password_file").read_text().splitlines()[0]
        except (OSError, IndexError):
            raise ConfigError("submission.password_file cannot be read") from None
    elif os.environ.get("MAILDIR_JMAP_SMTP_PASSWORD"):
        password = os.environ["MAILDIR_JMAP_SMTP_PASSWORD"]
    sending = SendingSettings(
        smarthost=Smarthost(
            host=host.strip("[]"),
            port=int(port),
            tls=v("submission", "tls"),
            username=v("submission", "username"),
            password=password,
        ),
        max_delayed_send=v("submission", "max_delayed_send"),
        max_size=v("submission", "max_size"),
        max_recipients=v("submission", "max_recipients"),
    )
    if (v("server", "tls_cert") is None) != (v("server", "tls_key") is None):
        raise ConfigError("server.tls_cert and server.tls_key go together")
    allow_private = v("push", "allow_private_targets")
    return Config(
        state_dir=v("server", "state_dir") or default_state_dir(),
        host=v("server", "host"),
        port=v("server", "port"),
        public_url=v("server", "public_url"),
        tls_cert=v("server", "tls_cert"),
        tls_key=v("server", "tls_key"),
        trusted_proxies=v("server", "trusted_proxies"),
        metrics_from=v("server", "metrics_from"),
        auth_backend=v("auth", "backend"),
        users_file=v("auth", "users_file"),
        dovecot_auth_socket=v("auth", "dovecot_auth_socket"),
        dovecot_userdb_socket=v("auth", "dovecot_userdb_socket"),
        dovecot_service=v("auth", "service"),
        mail_location=v("auth", "mail_location"),
        max_failures_per_user=v("auth", "max_failures_per_user"),
        max_failures_per_address=v("auth", "max_failures_per_address"),
        throttle_logins=v("auth", "throttle"),
        log_level=v("server", "log_level"),
        layout=v("mail", "layout"),
        watch=v("mail", "watch"),
        dovecot_config=v("mail", "dovecot_config"),
        rescan_interval=v("mail", "rescan_interval"),
        upload_expiry=v("mail", "upload_expiry"),
        idle_close=v("mail", "idle_close"),
        mail_domain=v("mail", "mail_domain"),
        sieve_dir=v("mail", "sieve_dir"),
        sieve_active=v("mail", "sieve_active"),
        sending=sending,
        push_allow_private_targets=allow_private,
        push_allow_http=allow_private,
        push_subject=v("push", "contact"),
        push_max_lifetime=v("push", "max_lifetime"),
        vapid_key_file=v("push", "vapid_key_file"),
        account_state=v("mail", "account_state"),
        route_backends=v("route", "backends"),
        route_port=v("route", "port"),
    )


def load(path: Path | None, environ: Mapping[str, str] = os.environ) -> Config:
    config = to_config(read(path, environ))
    wrong = problems(config)
    if wrong:
        where = f"{path}: " if path else ""
        raise ConfigError(where + "; ".join(wrong))
    return config


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _wrap(text: str, width: int = 86) -> list[str]:
    lines: list[str] = []
    line = "#"
    for word in text.split():
        if len(line) + 1 + len(word) > width:
            lines.append(line)
            line = "#"
        line += " " + word
    return [*lines, line]


def example() -> str:
    """The documented example config: every setting at its default."""
    out = [
        "# maildir-jmap configuration (maildir-jmap serve --config FILE).",
        "# Every setting, at its default. Environment variables override the file:",
        "# MAILDIR_JMAP_<SECTION>_<KEY>, e.g. MAILDIR_JMAP_SERVER_PORT=8443.",
        "# Check a file with: maildir-jmap check --config FILE",
    ]
    section = ""
    for setting in SETTINGS:
        if setting.section != section:
            section = setting.section
            out += ["", f"[{section}]"]
        out += [*_wrap(setting.doc), f"{setting.key} = {_toml_value(setting.default)}"]
    return "\n".join(out) + "\n"
