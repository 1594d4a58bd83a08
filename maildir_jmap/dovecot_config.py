"""Dovecot's effective configuration, read from Dovecot itself, and what it means
for one user: the one place ``serve``, ``index`` and ``check`` learn it.

``doveconf -n`` (of the configured dovecot.conf, else Dovecot's default) gives
every setting that differs from Dovecot's defaults, sections nested in braces;
``read`` parses it once. ``DovecotConfig.for_user`` then takes a userdb reply
(``home``, ``mail``, and per-user plugin settings such as ``quota_rule``, which
override the config's as Dovecot's own userdb fields do) and derives the Maildir
and its layout with every ``mail_location`` key honoured or refused
(``parse_mail_location``), the home (userdb ``home``, else ``mail_home``), the
INBOX namespace (prefix, separator, ``list``/``hidden``, its ``mailbox``
sections: special_use roles and ``auto = create|subscribe``), the Sieve location
Pigeonhole uses (``sieve = file:~/sieve;active=~/.dovecot.sieve``, or the older
``sieve`` + ``sieve_dir``), the quota root (store/quota.py) and the listescape
character (``mail_plugins = listescape``, ``listescape_char``).
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from maildir_jmap.store.quota import QuotaConfigError, QuotaSettings
from maildir_jmap.store.roles import DovecotMailboxes, autocreate_of, roles_of
from maildir_jmap.store.sieve import SieveLocation

log = logging.getLogger(__name__)


class UnsupportedLocation(ValueError):
    """A mail location this server cannot serve next to Dovecot (the reason says why)."""


# mail_location keys (doc.dovecot.org, Mail Location Settings) and what they mean here.
IGNORED_KEYS = {"INDEX", "INDEXPVT", "ITERINDEX", "VOLATILEDIR", "NO-NOSELECT"}
"""Where Dovecot keeps its own index, list-index and volatile files: never ours."""
REFUSED_KEYS = {
    "CONTROL": "Dovecot keeps dovecot-uidlist, dovecot-keywords and their locks elsewhere",
    "INBOX": "INBOX is not the Maildir's root",
    "UTF-8": "folder names are stored as UTF-8, not modified UTF-7",
    "DIRNAME": "messages live in a subdirectory of each folder",
    "FULLDIRNAME": "messages live in a subdirectory of each folder",
}


@dataclass(frozen=True)
class MailLocation:
    path: str
    """The Maildir path template (``%u``, ``%n``, ``%d``, ``%h``, ``~``)."""
    layout: str | None = None
    """"fs" or "maildir++" when the location says (LAYOUT=), else None: detect."""


def parse_mail_location(location: str) -> MailLocation:
    """``maildir:PATH[:KEY=VALUE...]``: the keys this server honours (LAYOUT), the
    ones that only move Dovecot's own files (INDEX and the like), and the ones it
    refuses (UnsupportedLocation with the reason: never silently dropped)."""
    kind, _, rest = location.partition(":")
    if kind != "maildir" or not rest:
        raise UnsupportedLocation(f"{location!r} is not a Maildir location (maildir:PATH)")
    path, *options = rest.split(":")
    layout = None
    for option in options:
        key, _, value = option.partition("=")
        key = key.upper()
        if key == "LAYOUT":
            if value.lower() not in ("fs", "maildir++"):
                raise UnsupportedLocation(f"{location!r}: LAYOUT={value} is not served")
            layout = value.lower()
        elif key in REFUSED_KEYS:
            raise UnsupportedLocation(f"{location!r}: {key}= ({REFUSED_KEYS[key]})")
        elif key not in IGNORED_KEYS:
            raise UnsupportedLocation(f"{location!r}: unknown key {key}")
    return MailLocation(path, layout)


# -- doveconf -n ------------------------------------------------------------------


@dataclass
class Section:
    """One block of ``doveconf -n``: ``kind name {`` ... ``}`` (the root has neither)."""

    kind: str = ""
    name: str = ""
    settings: dict[str, str] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)

    def each(self, kind: str) -> Iterator[Section]:
        return (s for s in self.sections if s.kind == kind)

    def first(self, kind: str, name: str | None = None) -> Section | None:
        return next((s for s in self.each(kind) if name is None or s.name == name), None)


_HEADER = re.compile(r'^([A-Za-z_][\w-]*)(?:\s+("(?:[^"\\]|\\.)*"|[^{\s]+))?\s*\{$')


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse(text: str) -> Section:
    """``doveconf -n`` output as nested sections (comments and blanks dropped)."""
    root = Section()
    stack = [root]
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line == "}":
            if len(stack) > 1:
                stack.pop()
            continue
        header = _HEADER.match(line)
        if header:
            section = Section(header.group(1), _unquote(header.group(2) or ""))
            stack[-1].sections.append(section)
            stack.append(section)
            continue
        key, eq, value = line.partition("=")
        if eq:
            stack[-1].settings[key.strip()] = _unquote(value.strip())
    return root


# -- what it means --------------------------------------------------------------------


@dataclass(frozen=True)
class Namespace:
    """The INBOX namespace, as IMAP clients see it."""

    prefix: str = ""
    separator: str = ""
    """"" : the layout's own ("." for Maildir++, "/" for fs)."""
    list: str = "yes"
    hidden: bool = False
    location: str = ""
    mailboxes: DovecotMailboxes = field(default_factory=DovecotMailboxes)


@dataclass(frozen=True)
class UserMail:
    """What Dovecot's configuration means for one user."""

    login: str
    maildir: Path | None
    layout: str | None = None
    home: Path | None = None
    sieve: SieveLocation | None = None
    quota: QuotaSettings | None = None
    escape: str | None = None
    """The listescape character, when Dovecot escapes names (``\\2e`` for ``.``)."""
    separator: str = ""
    unusable: str | None = None
    """Why this user's mail cannot be served as Dovecot is configured, if so."""


_VARIABLE = re.compile(r"%(?:\{(\w+)\}|(L?)([undh%]))")
_LONG = {"user": "u", "username": "n", "domain": "d", "home": "h"}


def expand(template: str, login: str, home: str | None) -> str | None:
    """Dovecot's ``%u %n %d %h %%`` (and ``%{user}``, ``%L`` lowercase) and a
    leading ``~``; None when it needs a home nobody gave or a variable we lack."""
    local, _, domain = login.partition("@")
    values = {"u": login, "n": local, "d": domain, "h": home, "%": "%"}
    missing = False

    def one(match: re.Match[str]) -> str:
        nonlocal missing
        letter = _LONG.get(match.group(1) or "", match.group(3) or "")
        value = values.get(letter) if letter else None
        if value is None:
            missing = True
            return ""
        return value.lower() if match.group(2) else value

    out = _VARIABLE.sub(one, template)
    if missing or "%" in _VARIABLE.sub("", template):
        return None
    if out.startswith("~"):
        if not home:
            return None
        out = home + out[1:]
    return out


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("yes", "y", "1", "true")


@dataclass(frozen=True)
class DovecotConfig:
    settings: dict[str, str] = field(default_factory=dict)
    plugin: dict[str, str] = field(default_factory=dict)
    plugins: frozenset[str] = frozenset()
    """``mail_plugins`` for IMAP (the protocol JMAP stands beside)."""
    delivery_plugins: frozenset[str] = frozenset()
    """``mail_plugins`` for LMTP and LDA, where Pigeonhole runs."""
    namespace: Namespace = field(default_factory=Namespace)

    @classmethod
    def from_text(cls, text: str) -> DovecotConfig:
        root = parse(text)

        def plugins_of(*protocols: str) -> frozenset[str]:
            names = set(root.settings.get("mail_plugins", "").split())
            for protocol in protocols:
                section = root.first("protocol", protocol)
                if section is not None and "mail_plugins" in section.settings:
                    names |= set(
                        section.settings["mail_plugins"].replace("$mail_plugins", "").split()
                    )
            return frozenset(names)

        inbox = next((n for n in root.each("namespace") if _truthy(n.settings.get("inbox"))), None)
        namespace = Namespace()
        if inbox is not None:
            boxes = {m.name: m.settings for m in inbox.each("mailbox")}
            namespace = Namespace(
                prefix=inbox.settings.get("prefix", ""),
                separator=inbox.settings.get("separator", ""),
                list=inbox.settings.get("list", "yes"),
                hidden=_truthy(inbox.settings.get("hidden")),
                location=inbox.settings.get("location", ""),
                mailboxes=DovecotMailboxes(roles_of(boxes), autocreate_of(boxes)),
            )
        plugin = root.first("plugin")
        return cls(
            dict(root.settings),
            dict(plugin.settings) if plugin else {},
            plugins_of("imap"),
            plugins_of("lmtp", "lda"),
            namespace,
        )

    @property
    def base_dir(self) -> Path:
        return Path(self.settings.get("base_dir", "/run/dovecot"))

    @property
    def auth_client_socket(self) -> Path:
        return self.base_dir / "auth-client"

    @property
    def auth_userdb_socket(self) -> Path:
        return self.base_dir / "auth-userdb"

    @property
    def mail_location(self) -> str:
        return self.namespace.location or self.settings.get("mail_location", "")

    def for_user(self, fields: Mapping[str, str], fallback_location: str | None = None) -> UserMail:
        """What the config and a userdb reply (``user``, ``home``, ``mail``, plugin
        overrides) mean for that user."""
        login = fields.get("user", "")
        home = fields.get("home") or None
        if home is None and self.settings.get("mail_home"):
            home = expand(self.settings["mail_home"], login, None)
        location = fields.get("mail") or self.mail_location or fallback_location or ""
        separator = self.namespace.separator
        try:
            maildir, layout = self._maildir(location, login, home)
        except UnsupportedLocation as exc:
            return UserMail(login, None, home=_path(home), unusable=str(exc))
        plugin = {**self.plugin, **{k: v for k, v in fields.items() if k not in _USERDB_OWN}}
        escape = None
        if "listescape" in self.plugins:
            escape = plugin.get("listescape_char", "\\") or "\\"
        quota = None
        if "quota" in self.plugins:
            try:
                quota = QuotaSettings.from_plugin(plugin)
            except QuotaConfigError as exc:
                return UserMail(login, maildir, layout, _path(home), unusable=str(exc))
        return UserMail(
            login,
            maildir,
            layout,
            _path(home),
            sieve_location(plugin, login, home),
            quota,
            escape,
            separator,
        )

    def _maildir(
        self, location: str, login: str, home: str | None
    ) -> tuple[Path | None, str | None]:
        if not location:
            return None, None
        if not location.startswith("maildir:"):
            raise UnsupportedLocation(f"{location!r} is not a Maildir location (maildir:PATH)")
        parsed = parse_mail_location(location)
        path = expand(parsed.path, login, home)
        return (Path(path) if path else None), parsed.layout


_USERDB_OWN = {"user", "home", "mail", "uid", "gid", "system_groups_user", "nologin"}
"""userdb fields that are not plugin settings."""


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def sieve_location(plugin: Mapping[str, str], login: str, home: str | None) -> SieveLocation | None:
    """Pigeonhole's personal script storage for the user, or None when it is not a
    plain directory we can write (no ``sieve``, a dict/ldap storage, no home)."""
    value = plugin.get("sieve", "")
    if not value:
        return None
    kind, sep, rest = value.partition(":")
    if sep and kind in ("file", "dict", "ldap"):
        if kind != "file":
            log.warning("Sieve storage %r is not a directory: VacationResponse is off", value)
            return None
        value = rest
    path, *options = value.split(";")
    active = next((o.partition("=")[2] for o in options if o.startswith("active=")), None)
    if active is None:
        if path.endswith(".sieve") or plugin.get("sieve_dir"):
            # The older form: sieve is the active script, sieve_dir the storage.
            active, path = path, plugin.get("sieve_dir", "")
        else:
            active = "~/.dovecot.sieve"
    directory = expand(path, login, home) if path else None
    link = expand(active, login, home)
    if not directory or not link:
        return None
    return SieveLocation(Path(directory), Path(link))


class DovecotConfigError(ValueError):
    """The dovecot.conf we were told to read cannot be read."""


def doveconf(config: Path | None) -> str | None:
    """``doveconf -n`` (of ``config``, else doveconf's default), or None when there
    is no Dovecot here. DovecotConfigError when the named ``config`` fails."""
    program = shutil.which("doveconf")
    if program is None:
        if config is not None:
            raise DovecotConfigError(f"cannot read {config}: doveconf is not installed")
        return None
    command = [program, "-n"] + (["-c", str(config)] if config else [])
    try:
        result = subprocess.run(  # noqa: S603 (our own argv, no shell)
            command, capture_output=True, text=True, timeout=10, check=True
        )
    except subprocess.CalledProcessError as exc:
        reason = (exc.stderr or "").strip().splitlines()[-1:] or [f"exit status {exc.returncode}"]
        if config is not None:
            raise DovecotConfigError(f"doveconf cannot read {config}: {reason[0]}") from None
        log.info("cannot read Dovecot's config: %s", reason[0])
        return None
    except (OSError, subprocess.SubprocessError) as exc:
        if config is not None:
            raise DovecotConfigError(f"cannot run doveconf for {config}: {exc}") from None
        log.info("cannot read Dovecot's config (%s)", exc)
        return None
    return result.stdout


def read(config: Path | None = None) -> DovecotConfig | None:
    """Dovecot's configuration, or None when there is no Dovecot to ask."""
    text = doveconf(config)
    return DovecotConfig.from_text(text) if text is not None else None
