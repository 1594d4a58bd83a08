"""A real SMTP server on loopback (aiosmtpd) playing the smarthost, with replies
the tests choose by address: ``reject-*`` recipients get 550, ``later-*`` 451,
``refused-*`` senders 553; ``data_reply`` overrides the DATA answer."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.ports import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    mail_options: list[str]


@dataclass
class SmtpHandler:
    messages: list[Received] = field(default_factory=list)
    data_replies: list[str] = field(default_factory=list)
    """Replies to the next DATA commands, in order (then 250)."""
    later_once: set[str] = field(default_factory=set)
    """Recipients answered 451 on their first RCPT only."""
    closed: bool = False
    """Answer every MAIL with 530 (a relay that wants AUTH we do not give)."""
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.closed:
            return "530 5.7.0 Authentication required"
        if address.startswith("refused-"):
            return "553 5.7.1 sender not allowed here"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.startswith("reject-"):
            return "550-5.1.1 no such user here\r\n550 5.1.1 check the address"
        if address.startswith("later-"):
            return "451 4.3.0 try again later"
        if address in self.later_once:
            self.later_once.discard(address)
            return "451 4.7.1 greylisted, come back soon"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 recipient OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_replies:
            reply = self.data_replies.pop(0)
            if not reply.startswith("2"):
                return reply
        with self.arrived:
            self.messages.append(
                Received(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    envelope.content,
                    list(envelope.mail_options),
                )
            )
            self.arrived.notify_all()
        return "250 2.0.0 queued as 4711"

    def wait(self, count: int, timeout: float = 10.0) -> list[Received]:
        with self.arrived:
            ok = self.arrived.wait_for(lambda: len(self.messages) >= count, timeout)
            assert ok, f"expected {count} messages, got {len(self.messages)}"
            return list(self.messages)


@dataclass
class SmtpServer:
    handler: SmtpHandler
    port: int


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    handler = SmtpHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(handler, port)
    finally:
        controller.stop()
