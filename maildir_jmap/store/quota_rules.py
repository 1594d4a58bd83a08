"""Dovecot's quota rules (its quota-util.c syntax): ``quota``, ``quota_rule``,
``quota_rule2``, ... and ``quota_vsizes`` from the plugin settings, with the
userdb's per-user overrides already merged in (store/quota.py keeps the usage)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

BACKENDS = ("count", "maildir")
_UNITS = {"": None, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_LIMIT = re.compile(r"^([+-]?)(\d+)([A-Za-z%]?)$")


class QuotaConfigError(ValueError):
    """Dovecot's quota settings name something this server cannot keep."""


@dataclass(frozen=True)
class Rule:
    """One ``quota_rule`` for a mailbox mask: limits added to the default ones."""

    mask: str
    bytes: int = 0
    messages: int = 0
    bytes_percent: int = 0
    messages_percent: int = 0
    ignore: bool = False


def _limit(key: str, value: str, relative: bool) -> tuple[int, int]:
    """(amount, percent) of one ``storage=``/``bytes=``/``messages=`` value."""
    match = _LIMIT.match(value)
    if match is None or (match.group(1) == "+" and not relative):
        raise QuotaConfigError(f"invalid quota limit {key}={value}")
    sign = -1 if match.group(1) == "-" else 1
    number = sign * int(match.group(2))
    unit = match.group(3).upper()
    if unit == "%":
        if not relative:
            raise QuotaConfigError(f"the default quota rule cannot be a percentage ({value})")
        return 0, number
    if unit not in _UNITS:
        raise QuotaConfigError(f"unknown quota unit in {key}={value}")
    multiply = _UNITS[unit] or (1 << 10 if key == "storage" else 1)
    return number * multiply, 0


def parse_rule(text: str) -> Rule:
    """``<mailbox mask>:<limit>[:<limit>...]`` or ``<mask>:ignore``."""
    mask, sep, limits = text.partition(":")
    if not sep or not mask:
        raise QuotaConfigError(f"invalid quota rule {text!r}")
    if mask.upper() == "INBOX":
        mask = "INBOX"
    if limits == "ignore":
        return Rule(mask, ignore=True)
    if limits.startswith("backend="):
        raise QuotaConfigError(f"quota rule {text!r}: backend= rules are not served")
    relative = mask not in ("*", "?")
    size = (0, 0)
    count = (0, 0)
    for part in limits.split(":"):
        key, _, value = part.partition("=")
        if key not in ("storage", "bytes", "messages"):
            raise QuotaConfigError(f"quota rule {text!r}: unknown limit {key!r}")
        if key == "messages":
            count = _limit(key, value, relative)
        else:
            size = _limit(key, value, relative)
    if not relative and (size[0] < 0 or count[0] < 0):
        raise QuotaConfigError(f"quota rule {text!r}: a limit cannot be negative")
    return Rule(mask, size[0], count[0], size[1], count[1])


def wildcard_match(name: str, mask: str) -> bool:
    """Dovecot's wildcard_match: ``*`` any run, ``?`` one character, the rest exact."""
    pattern = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in mask)
    return re.fullmatch(pattern, name, re.S) is not None


@dataclass(frozen=True)
class QuotaSettings:
    """One quota root of one user (Dovecot's first root, ``quota``)."""

    name: str = "User quota"
    backend: str = "count"
    bytes: int = 0
    """The default rule's byte limit; 0: unlimited."""
    messages: int = 0
    rules: tuple[Rule, ...] = ()
    """Mailbox rules, in the order Dovecot tries them."""
    forced: bool = False
    """The default came from ``*`` (maildirsize's limits are rewritten), not ``?``."""
    vsizes: bool = False
    enforcing: bool = True

    @classmethod
    def from_plugin(cls, settings: Mapping[str, str]) -> QuotaSettings | None:
        """The quota root in Dovecot's plugin settings (userdb overrides merged in),
        None when there is none. QuotaConfigError for what we cannot keep."""
        definition = settings.get("quota", "")
        if not definition:
            return None
        backend, _, rest = definition.partition(":")
        if backend not in BACKENDS:
            raise QuotaConfigError(
                f"quota backend {backend!r} is not served (only {' and '.join(BACKENDS)})"
            )
        name, *options = rest.split(":") if rest else [""]
        enforcing = "noenforcing" not in options
        if any(o.startswith("ns=") for o in options):
            raise QuotaConfigError("quota roots limited to one namespace (ns=) are not served")
        default = Rule("*")
        forced = False
        rules: list[Rule] = []
        key, number = "quota_rule", 2
        while key in settings:
            rule = parse_rule(settings[key])
            if rule.mask in ("*", "?"):
                default, forced = rule, forced or rule.mask == "*"
            else:
                rules = [r for r in rules if r.mask != rule.mask] + [rule]
            key, number = f"quota_rule{number}", number + 1
        vsizes = settings.get("quota_vsizes", "no").lower() in ("yes", "y", "1", "true")
        return cls(
            name or backend, backend, default.bytes, default.messages, tuple(rules),
            forced, vsizes, enforcing,
        )  # fmt: skip

    def rule_for(self, mailbox: str) -> Rule | None:
        return next((r for r in self.rules if wildcard_match(mailbox, r.mask)), None)

    def counted(self, mailbox: str) -> bool:
        rule = self.rule_for(mailbox)
        return rule is None or not rule.ignore

    def limits(self, mailbox: str) -> tuple[int, int]:
        """(bytes, messages) limits for saving into ``mailbox``; 0 is unlimited."""
        rule = self.rule_for(mailbox)
        if rule is None:
            return self.bytes, self.messages
        if rule.ignore:
            return 0, 0
        size = self.bytes + (
            self.bytes * rule.bytes_percent // 100 if rule.bytes_percent else rule.bytes
        )
        count = self.messages + (
            self.messages * rule.messages_percent // 100 if rule.messages_percent else rule.messages
        )
        return max(size, 0), max(count, 0)
