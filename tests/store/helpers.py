"""Build Maildirs for store tests."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from maildir_jmap.store.maildir import deliver, make_folder


def message(subject: str, body: str = "hello\n", **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Ann <ann@example.org>"
    msg["To"] = "bob@example.org"
    msg["Subject"] = subject
    msg["Date"] = "Tue, 14 Nov 2023 22:13:20 +0000"
    msg["Message-ID"] = headers.pop("message_id", f"<{subject.replace(' ', '.')}@example.org>")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes(policy=SMTP)


def maildir(root: Path, *folders: str) -> Path:
    make_folder(root, marker=False)
    for folder in folders:
        make_folder(root / f".{folder}", marker=True)
    return root


def put(folder: Path, raw: bytes, flags: str = "", received: float = 1_700_000_000) -> Path:
    return deliver(folder, raw, flags=flags, received=received, seen=bool(flags) or True)
