"""The send scheduler over a real account and a real SMTP server: a job that was
being sent when the server died is sent again after a restart."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from maildir_jmap.delivery.scheduler import Sender, SendingSettings
from maildir_jmap.delivery.smtp import Smarthost
from maildir_jmap.mail.submission import record_outcome
from maildir_jmap.store.account import Account
from maildir_jmap.store.outbox import Job, Outbox
from tests.smtp import SmtpServer


async def test_a_job_interrupted_mid_send_is_retried_at_start(
    tmp_path: Path, maildir: Path, smtp_server: SmtpServer
) -> None:
    account = Account.open("alice", maildir, tmp_path / "state")
    outbox = Outbox(account.state_dir)
    job = Job("Uinterrupted", "alice", "alice@example.org", [], ["b@example.net"],
              due=time.time() - 5, created=time.time() - 60, attempts=1, sending=True)  # fmt: skip
    outbox.add(job, b"From: alice@example.org\r\nTo: b@example.net\r\n\r\nhi\r\n")
    settings = SendingSettings(smarthost=Smarthost(port=smtp_server.port, timeout=5))
    sender = Sender(settings, lambda user: account if user == "alice" else None, record_outcome)
    await sender.start(tmp_path / "state")
    try:
        deadline = time.monotonic() + 10
        while outbox.get("Uinterrupted") is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await sender.stop()
        account.close()
    (received,) = smtp_server.handler.messages
    assert received.rcpt_tos == ["b@example.net"]
    assert outbox.get("Uinterrupted") is None
    assert not list((account.state_dir / "outbox").iterdir())
