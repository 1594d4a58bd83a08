"""Relaying to a real SMTP server (aiosmtpd on loopback): what each reply means."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

from maildir_jmap.delivery.smtp import Smarthost, reply_text, transmit
from tests.ports import free_port
from tests.smtp import SmtpHandler, SmtpServer
from tests.tls import self_signed

MESSAGE = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nhello\r\n"


def host(server: SmtpServer) -> Smarthost:
    return Smarthost(port=server.port, timeout=5)


async def test_each_recipient_gets_its_rcpt_reply_rfc8621_7(smtp_server: SmtpServer) -> None:
    outcome = await transmit(
        host(smtp_server), "a@example.org", [], ["b@example.net", "reject-c@example.net"], MESSAGE
    )
    assert outcome.accepted == ["b@example.net"]
    assert outcome.failed == ["reject-c@example.net"]
    assert outcome.replies == {
        "b@example.net": "250 2.1.5 recipient OK",
        # §7: a multi-line reply on one line, the repeated status code dropped.
        "reject-c@example.net": "550 5.1.1 no such user here check the address",
    }
    (received,) = smtp_server.handler.wait(1)
    assert received.rcpt_tos == ["b@example.net"]
    assert received.data.replace(b"\r\n", b"\n") == MESSAGE.replace(b"\r\n", b"\n")


async def test_temporary_refusals_are_kept_for_a_retry(smtp_server: SmtpServer) -> None:
    outcome = await transmit(
        host(smtp_server), "a@example.org", [], ["later-b@example.net"], MESSAGE
    )
    assert (outcome.accepted, outcome.failed) == ([], [])
    assert outcome.retry == ["later-b@example.net"]
    assert outcome.replies["later-b@example.net"] == "451 4.3.0 try again later"
    assert smtp_server.handler.messages == []


async def test_sender_refused_for_good(smtp_server: SmtpServer) -> None:
    outcome = await transmit(host(smtp_server), "refused-a@example.org", [], ["b@x.net"], MESSAGE)
    assert outcome.sender_refused
    assert outcome.failed == ["b@x.net"]
    assert outcome.replies["b@x.net"].startswith("553 5.7.1")


async def test_data_replies_decide_for_every_accepted_recipient(smtp_server: SmtpServer) -> None:
    smtp_server.handler.data_replies[:] = ["552 5.3.4 message too big", "451 4.3.2 busy"]
    too_big = await transmit(host(smtp_server), "a@x.org", [], ["b@x.net"], MESSAGE)
    assert too_big.too_large
    assert too_big.failed == ["b@x.net"]
    busy = await transmit(host(smtp_server), "a@x.org", [], ["b@x.net"], MESSAGE)
    assert busy.retry == ["b@x.net"]
    assert busy.replies["b@x.net"] == "451 4.3.2 busy"


async def test_no_smarthost_is_a_temporary_failure() -> None:
    outcome = await transmit(
        Smarthost(port=free_port(), timeout=2), "a@x.org", [], ["b@x.net"], MESSAGE
    )
    assert outcome.retry == ["b@x.net"]
    assert outcome.replies["b@x.net"].startswith("4")


def test_reply_text_joins_lines_rfc8621_7() -> None:
    message = "5.7.1 Our system has detected that this message is\n5.7.1 likely spam."
    assert reply_text(550, message) == (
        "550 5.7.1 Our system has detected that this message is likely spam."
    )


def tls_context(tmp_path: Path) -> ssl.SSLContext:
    cert, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    ok = data.login == b"relay" and data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)


@contextlib.contextmanager
def implicit_tls_server(handler: SmtpHandler, port: int, context: ssl.SSLContext) -> Iterator[None]:
    """aiosmtpd behind implicit TLS (port 465 style) on a loop of its own: its
    Controller's readiness probe does not speak TLS."""
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def factory() -> SMTP:
        with warnings.catch_warnings():  # "AUTH without requiring (STARTTLS) TLS"
            warnings.simplefilter("ignore")
            return SMTP(
                handler, authenticator=authenticator, auth_required=True, auth_require_tls=False
            )

    async def serve() -> None:
        server = await loop.create_server(factory, "127.0.0.1", port, ssl=context)
        started.set()
        async with server:
            await asyncio.Event().wait()

    task = loop.create_task(serve())

    def run() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task)
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(5)
    try:
        yield
    finally:
        loop.call_soon_threadsafe(task.cancel)
        thread.join(5)


@pytest.fixture(params=["starttls", "implicit"])
def tls_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[SmtpHandler, Smarthost]]:
    """A smarthost that insists on TLS and AUTH, in both TLS modes."""
    handler = SmtpHandler()
    port = free_port()
    context = tls_context(tmp_path)
    mode = request.param
    host = Smarthost(
        port=port, tls=mode, username="relay", password="s3cret", timeout=5, validate_certs=False
    )
    if mode == "implicit":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # aiosmtpd's own login_data
            with implicit_tls_server(handler, port, context):
                yield handler, host
        return
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_required=True,
        tls_context=context,
        require_starttls=True,
    )
    controller.start()
    try:
        yield handler, host
    finally:
        controller.stop()


async def test_tls_modes_and_auth(tls_server: tuple[SmtpHandler, Smarthost]) -> None:
    handler, host = tls_server
    outcome = await transmit(host, "a@x.org", [], ["b@x.net"], MESSAGE)
    assert outcome.accepted == ["b@x.net"], outcome
    assert handler.wait(1)[0].rcpt_tos == ["b@x.net"]


async def test_wrong_relay_password_is_forbidden_to_send(
    tls_server: tuple[SmtpHandler, Smarthost],
) -> None:
    handler, host = tls_server
    outcome = await transmit(replace(host, password="wrong"), "a@x.org", [], ["b@x.net"], MESSAGE)
    assert outcome.forbidden is not None
    assert outcome.forbidden.startswith("535")
    assert outcome.failed == ["b@x.net"]
    assert handler.messages == []


async def test_no_auth_where_required_is_forbidden_to_send(
    tls_server: tuple[SmtpHandler, Smarthost],
) -> None:
    _, host = tls_server
    outcome = await transmit(
        replace(host, username=None, password=None), "a@x.org", [], ["b@x.net"], MESSAGE
    )
    assert outcome.forbidden is not None
    assert outcome.forbidden.startswith("530")
