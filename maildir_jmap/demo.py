"""A small demo Maildir (Maildir++ layout) so a newcomer sees real mail at once.

INBOX with a three-message thread, a newsletter in multipart/alternative, a
message with an attachment and non-ASCII headers; Sent, Archive, Drafts, Trash.
"""

from __future__ import annotations

import base64
import logging
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parsedate_to_datetime
from pathlib import Path

from maildir_jmap.store.maildir import deliver, make_folder

log = logging.getLogger(__name__)

FOLDERS = ("Sent", "Archive", "Drafts", "Trash")
# A 1x1 PNG, so the attachment is a real image.
_PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def _message(
    sender: str, to: str, subject: str, body: str, when: float, **headers: str
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.fromtimestamp(when, UTC))
    msg["Message-ID"] = make_msgid(domain="demo.example")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def create_demo_maildir(root: Path, user: str = "you") -> Path:
    """Create the demo under ``root`` (which must not exist yet) and return it."""
    make_folder(root, marker=False)
    for folder in FOLDERS:
        make_folder(root / f".{folder}", marker=True)
    (root / "subscriptions").write_text("V\t2\n\n" + "".join(f"{f}\n" for f in FOLDERS))
    me = f"{user} <{user}@demo.example>"
    day = 86400.0
    now = time.time()

    first = _message(
        "Ada Lovelace <ada@demo.example>",
        me,
        "Lunch on Friday?",
        "Shall we try the new place by the river on Friday at noon?\n",
        now - 3 * day,
    )
    reply = _message(
        me,
        "Ada Lovelace <ada@demo.example>",
        "Re: Lunch on Friday?",
        "Friday works. Noon it is.\n\n> Shall we try the new place by the river?\n",
        now - 2.9 * day,
        In_Reply_To=first["Message-ID"],
        References=first["Message-ID"],
    )
    third = _message(
        "Ada Lovelace <ada@demo.example>",
        me,
        "Re: Lunch on Friday?",
        "Great, I booked a table for two.\n",
        now - 2.8 * day,
        In_Reply_To=reply["Message-ID"],
        References=f"{first['Message-ID']} {reply['Message-ID']}",
    )
    photo = _message(
        "José Müller <jose@demo.example>",
        me,
        "Grüße aus Köln 📷",
        "Hallo! Anbei ein (sehr kleines) Foto vom Dom.\n\nViele Grüße\nJosé\n",
        now - day,
    )
    photo.add_attachment(_PIXEL, maintype="image", subtype="png", filename="Kölner Dom.png")
    news = _message(
        "The Demo Weekly <news@demo.example>",
        me,
        "This week: JMAP arrives next to your Dovecot",
        "Your mail, now over JMAP as well as IMAP. Nothing moved.\n",
        now - 0.2 * day,
    )
    news.add_alternative(
        "<html><body><h1>This week</h1><p>Your mail, now over <b>JMAP</b> as well as "
        "IMAP. Nothing moved.</p></body></html>\n",
        subtype="html",
    )
    draft = _message(
        me, "ada@demo.example", "Notes for Friday", "Bring the map.\n", now - 0.1 * day
    )

    def put(folder: Path, msg: EmailMessage, flags: str, seen: bool = True) -> None:
        received = parsedate_to_datetime(str(msg["Date"])).timestamp()
        deliver(folder, msg.as_bytes(policy=SMTP), flags=flags, received=received, seen=seen)

    put(root, first, "S")
    put(root / ".Sent", reply, "S")
    put(root, third, "")
    put(root, photo, "F")
    put(root, news, "", seen=False)
    put(root / ".Drafts", draft, "DS")
    log.info("created a demo Maildir at %s", root)
    return root
