"""The SMTP side of an EmailSubmission (RFC 8621 §7): the envelope taken from the
request or derived from the message, its checks, delayed-send parameters
(RFC 4865 FUTURERELEASE) and the bytes to transmit (Bcc removed)."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from maildir_jmap.core.errors import SetError, invalid_properties
from maildir_jmap.core.types import ArgumentError, JSONObject, parse_date
from maildir_jmap.mail.identity import may_send_from
from maildir_jmap.mime.headers import as_addresses
from maildir_jmap.mime.parse import split_head

MAX_ADDRESS = 254
_ADDRESS = re.compile(r"[^\s<>@\"]+@[^\s<>@\[\]]+\.?[^\s<>@\[\]]*")
FUTURE_PARAMS = ("HOLDFOR", "HOLDUNTIL")


def valid_address(address: str) -> bool:
    return len(address) <= MAX_ADDRESS and _ADDRESS.fullmatch(address) is not None


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    mail_params: dict[str, str | None]
    rcpt_to: list[str]

    def to_json(self) -> JSONObject:
        return {
            "mailFrom": {"email": self.mail_from, "parameters": self.mail_params or None},
            "rcptTo": [{"email": r, "parameters": None} for r in self.rcpt_to],
        }


def _single(fields: list[tuple[str, str]], name: str) -> str | None:
    """The one address of the last ``name`` field; invalidEmail if ambiguous."""
    found = [value for field, value in fields if field.lower() == name]
    if not found:
        return None
    addresses = as_addresses(found[-1])
    if len(found) > 1 or len(addresses) != 1:
        raise SetError(
            "invalidEmail", f"the message needs exactly one {name} address", properties=[name]
        )
    return str(addresses[0]["email"])


def check_from(raw: bytes, addresses: Sequence[str]) -> list[tuple[str, str]]:
    """The header fields, after checking every From address may be sent from."""
    fields, _ = split_head(raw)
    froms = [
        a["email"] for v in (v for f, v in fields if f.lower() == "from") for a in as_addresses(v)
    ]
    if not froms:
        raise SetError("invalidEmail", "the message has no From address", properties=["from"])
    for address in froms:
        if not may_send_from(addresses, address):
            raise SetError("forbiddenFrom", f"you may not send as {address}")
    return fields


def derive(fields: list[tuple[str, str]], identity_email: str) -> Envelope:
    """§7: MAIL FROM from Sender, else From (the Identity's address if that one is
    not the Identity's); RCPT TO from To, Cc and Bcc, deduplicated."""
    mail_from = _single(fields, "sender") or _single(fields, "from") or identity_email
    if not may_send_from([identity_email], mail_from):
        mail_from = identity_email
    recipients: dict[str, None] = {}
    for field, value in fields:
        if field.lower() in ("to", "cc", "bcc"):
            for address in as_addresses(value):
                email = address.get("email")
                if isinstance(email, str) and email:
                    recipients.setdefault(email, None)
    return Envelope(mail_from, {}, list(recipients))


def parse_envelope(value: object) -> Envelope:
    """A client-given Envelope object, type-checked."""
    bad = invalid_properties("envelope", description="envelope must be null or an Envelope")
    if not isinstance(value, dict) or set(value) != {"mailFrom", "rcptTo"}:
        raise bad
    mail_from, rcpt_to = value["mailFrom"], value["rcptTo"]
    if not isinstance(rcpt_to, list):
        raise bad
    for address in (mail_from, *rcpt_to):
        if (
            not isinstance(address, dict)
            or not set(address) <= {"email", "parameters"}
            or not isinstance(address.get("email"), str)
            or not (address.get("parameters") is None or isinstance(address["parameters"], dict))
        ):
            raise bad
    params = mail_from.get("parameters") or {}
    if not all(isinstance(v, str | None) for v in params.values()):
        raise bad
    unknown = [k for k in params if k.upper() not in FUTURE_PARAMS]
    if unknown or any(r.get("parameters") for r in rcpt_to):
        raise invalid_properties(
            "envelope",
            description="only the FUTURERELEASE parameters HOLDFOR and HOLDUNTIL are supported",
        )
    return Envelope(
        mail_from["email"],
        {k.upper(): v for k, v in params.items()},
        list(dict.fromkeys(r["email"] for r in rcpt_to)),
    )


def release_time(params: dict[str, str | None], max_delay: int, now: float) -> float:
    """When to send (RFC 4865 §3: HOLDFOR seconds or HOLDUNTIL a date-time)."""
    hold_for, hold_until = params.get("HOLDFOR"), params.get("HOLDUNTIL")
    if hold_for is not None and hold_until is not None:
        raise invalid_properties("envelope", description="HOLDFOR and HOLDUNTIL exclude each other")
    when = now
    if hold_for is not None:
        if not hold_for.isdigit() or len(hold_for) > 12:
            raise invalid_properties("envelope", description="HOLDFOR must be seconds")
        when = now + int(hold_for)
    elif hold_until is not None:
        try:
            when = parse_date(hold_until).timestamp()
        except ArgumentError:
            raise invalid_properties(
                "envelope", description="HOLDUNTIL must be an RFC 3339 date-time"
            ) from None
    if when - now > max_delay:
        raise invalid_properties(
            "envelope", description=f"delayed send is limited to {max_delay} seconds"
        )
    return max(when, now)


def check_recipients(envelope: Envelope, max_recipients: int) -> None:
    if not envelope.rcpt_to:
        raise SetError("noRecipients", "the envelope has no recipients")
    if len(envelope.rcpt_to) > max_recipients:
        raise SetError(
            "tooManyRecipients", f"at most {max_recipients}", maxRecipients=max_recipients
        )
    invalid = [r for r in envelope.rcpt_to if not valid_address(r)]
    if invalid:
        raise SetError("invalidRecipients", "not addresses", invalidRecipients=invalid)


_BCC = re.compile(rb"(?im)^bcc[ \t]*:.*(?:\r?\n[ \t].*)*(?:\r?\n|$)")


def without_bcc(raw: bytes) -> bytes:
    """§7.5: the Bcc header field never leaves the server (its folded lines too)."""
    match = re.search(rb"\r?\n\r?\n", raw)
    head, body = (
        (raw, b"") if match is None else (raw[: match.start() + 2], raw[match.start() + 2 :])
    )
    return _BCC.sub(b"", head) + body


def now() -> float:
    return time.time()
