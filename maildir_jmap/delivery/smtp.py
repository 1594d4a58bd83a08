"""Relaying a message to the configured SMTP smarthost (aiosmtplib), one
recipient at a time so each gets its own reply (RFC 8621 §7 deliveryStatus).

``transmit`` never raises for SMTP or network trouble: it returns an
``Outcome`` saying what happened to each recipient, and whether the rest is
worth retrying (4xx replies, connection failures) or final (5xx).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass
from typing import Literal

import aiosmtplib

from maildir_jmap.store.outbox import Outcome

log = logging.getLogger(__name__)

TlsMode = Literal["implicit", "starttls", "none"]


@dataclass(frozen=True)
class Smarthost:
    host: str = "127.0.0.1"
    port: int = 25
    tls: TlsMode = "none"
    """``implicit`` (port 465), ``starttls`` (required, port 587) or ``none``."""
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    validate_certs: bool = True


_ENHANCED = re.compile(r"^\d\.\d{1,3}\.\d{1,3} ")


def reply_text(code: int, message: str) -> str:
    """RFC 8621 §7 smtpReply: a multi-line reply on one line, the first line's
    enhanced status code not repeated."""
    lines = [line.strip() for line in message.splitlines() if line.strip()] or [""]
    first = lines[0]
    prefix = _ENHANCED.match(first)
    rest = [line.removeprefix(prefix.group(0)) if prefix else line for line in lines[1:]]
    return " ".join([f"{code} {first}".strip(), *rest])


def _permanent(code: int) -> bool:
    return 500 <= code < 600


async def transmit(
    host: Smarthost,
    mail_from: str,
    mail_options: list[str],
    recipients: list[str],
    message: bytes,
) -> Outcome:
    outcome = Outcome()
    sent = False
    utf8 = not (mail_from.isascii() and all(r.isascii() for r in recipients))
    smtp = aiosmtplib.SMTP(
        hostname=host.host,
        port=host.port,
        username=host.username,
        password=host.password,
        use_tls=host.tls == "implicit",
        start_tls=host.tls == "starttls",
        timeout=host.timeout,
        validate_certs=host.validate_certs,
    )
    try:
        try:
            await smtp.connect()
        except aiosmtplib.SMTPAuthenticationError as exc:
            outcome.forbidden = reply_text(exc.code, exc.message)
            outcome.failed = list(recipients)
            outcome.replies = dict.fromkeys(recipients, outcome.forbidden)
            return outcome
        options = list(mail_options)
        if not message.isascii() and smtp.supports_extension("8BITMIME"):
            options.append("BODY=8BITMIME")
        if utf8:
            if not smtp.supports_extension("SMTPUTF8"):
                for r in recipients:
                    outcome.replies[r] = "553 5.6.7 the smarthost does not offer SMTPUTF8"
                outcome.failed = list(recipients)
                return outcome
            options.append("SMTPUTF8")
        encoding = "utf-8" if utf8 else "ascii"
        try:
            await smtp.mail(mail_from, options=options, encoding=encoding)
        except aiosmtplib.SMTPSenderRefused as exc:
            text = reply_text(exc.code, exc.message)
            for r in recipients:
                outcome.replies[r] = text
            if exc.code == 530 or exc.message.startswith("5.7.0"):
                outcome.forbidden = text  # authentication required
                outcome.failed = list(recipients)
            elif _permanent(exc.code):
                outcome.sender_refused = True
                outcome.failed = list(recipients)
            else:
                outcome.retry = list(recipients)
            return outcome
        for recipient in recipients:
            try:
                response = await smtp.rcpt(recipient, encoding=encoding)
            except aiosmtplib.SMTPRecipientRefused as exc:
                outcome.replies[recipient] = reply_text(exc.code, exc.message)
                bucket = outcome.failed if _permanent(exc.code) else outcome.retry
                bucket.append(recipient)
            else:
                outcome.replies[recipient] = reply_text(response.code, response.message)
                outcome.accepted.append(recipient)
        if not outcome.accepted:
            await smtp.rset()
            return outcome
        try:
            await smtp.data(message)
            sent = True
        except aiosmtplib.SMTPDataError as exc:
            text = reply_text(exc.code, exc.message)
            for r in outcome.accepted:
                outcome.replies[r] = text
            if _permanent(exc.code):
                outcome.too_large = exc.code == 552 or "5.3.4" in exc.message
                outcome.failed += outcome.accepted
            else:
                outcome.retry += outcome.accepted
            outcome.accepted = []
            sent = True
        return outcome
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        # No answer we can attribute: everything not yet accepted is retried.
        log.info("smarthost %s:%d: %s", host.host, host.port, exc)
        code = getattr(exc, "code", 421)
        text = reply_text(code if isinstance(code, int) and code >= 400 else 421, f"4.4.1 {exc}")
        if not sent:  # accepted at RCPT, but the message never went through
            outcome.accepted = []
        done = set(outcome.accepted) | set(outcome.failed)
        for r in recipients:
            if r not in done and r not in outcome.retry:
                outcome.replies[r] = text
                outcome.retry.append(r)
        return outcome
    finally:
        if smtp.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                await smtp.quit()
        smtp.close()  # idempotent; also frees a transport a failed command left behind
        # Let the transport finish closing (a TLS close_notify takes a few loop
        # turns) before send_now's short-lived loop ends.
        await asyncio.sleep(0.1 if host.tls != "none" else 0)
