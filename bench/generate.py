"""A generator of realistic Maildirs, deterministic from a seed.

Folders like a real account (INBOX, Sent, Archive, mailing lists), threads with
In-Reply-To/References chains, plain, multipart/alternative and messages with
attachments, non-ASCII headers, sizes from a long-tailed distribution, and
delivery times spread over years (file mtimes = Dovecot's INTERNALDATE).
Files follow MAILDIR.md's naming (exact ,S= and ,W=, flags in order); they are
not fsynced, since a benchmark fixture needs no durability.
"""

from __future__ import annotations

import base64
import os
import random
from dataclasses import dataclass
from pathlib import Path

from maildir_jmap.store.folders import create_folder
from maildir_jmap.store.maildir import make_folder
from maildir_jmap.store.names import MAILDIRPP

FOLDERS = [  # (levels, share of messages)
    ((), 0.45),
    (("Archive",), 0.2),
    (("Sent",), 0.15),
    (("Lists", "python-dev"), 0.08),
    (("Lists", "debian-user"), 0.07),
    (("Trash",), 0.03),
    (("Drafts",), 0.02),
]
PEOPLE = [
    ("Ada Lovelace", "ada@example.org"),
    ("Grace Hopper", "grace@example.net"),
    ("José Müller", "jose@example.de"),
    ("Zoë Ødegård", "zoe@example.no"),
    ("李雷", "li@example.cn"),
    ("Alan Turing", "alan@example.co.uk"),
    ("Build Bot", "ci@builds.example.com"),
    ("Newsletter", "news@shop.example"),
]
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "meeting",
    "report",
    "budget",
    "review",
    "release",
    "deploy",
    "server",
    "mail",
    "folder",
    "thread",
    "reply",
    "question",
    "answer",
    "schedule",
    "Friday",
    "lunch",
    "invoice",
    "attached",
    "please",
    "find",
    "draft",
    "final",
    "version",
    "notes",
    "agenda",
    "Grüße",
    "Köln",
    "café",
]
SUBJECTS = [
    "Quarterly report",
    "Lunch on Friday?",
    "Release 2.4 is out",
    "Invoice {n}",
    "Grüße aus Köln",
    "Build #{n} failed",
    "Meeting notes",
    "Re: question about the API",
    "Ihre Bestellung {n}",
    "周末计划",
]


@dataclass(frozen=True)
class Generated:
    root: Path
    messages: int
    bytes: int


def _encode_name(name: str) -> str:
    if name.isascii():
        return name
    return "=?UTF-8?B?" + base64.b64encode(name.encode()).decode() + "?="


def _encode_subject(subject: str) -> str:
    return _encode_name(subject)


def _body(rng: random.Random) -> str:
    # Long-tailed body sizes: median around 1.5 KB, a few tens of KB.
    size = int(min(rng.lognormvariate(7.3, 1.0), 60_000))
    words: list[str] = []
    total = 0
    while total < size:
        word = rng.choice(WORDS)
        words.append(word)
        total += len(word) + 1
    lines = []
    for i in range(0, len(words), 12):
        lines.append(" ".join(words[i : i + 12]))
    return "\n".join(lines) + "\n"


def _message(
    rng: random.Random, n: int, parent: tuple[str, list[str], str] | None, date: float
) -> tuple[bytes, str, list[str], str]:
    sender = rng.choice(PEOPLE)
    recipient = rng.choice(PEOPLE)
    message_id = f"<{n}.{rng.getrandbits(40):x}@gen.example>"
    if parent is not None:
        parent_id, parent_refs, parent_subject = parent
        subject = parent_subject if parent_subject.startswith("Re: ") else "Re: " + parent_subject
        references = [*parent_refs, parent_id][-10:]
    else:
        subject = rng.choice(SUBJECTS).format(n=n)
        references = []
    from email.utils import formatdate

    headers = [
        f"Return-Path: <{sender[1]}>",
        f"Received: from mx.example.org by mail.example.org; {formatdate(date)}",
        f"From: {_encode_name(sender[0])} <{sender[1]}>",
        f"To: {_encode_name(recipient[0])} <{recipient[1]}>",
        f"Subject: {_encode_subject(subject)}",
        f"Date: {formatdate(date)}",
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
    ]
    if rng.random() < 0.3:
        cc = rng.choice(PEOPLE)
        headers.append(f"Cc: {_encode_name(cc[0])} <{cc[1]}>")
    if references:
        headers.append(f"In-Reply-To: {references[-1]}")
        headers.append("References: " + " ".join(references))
    body = _body(rng)
    kind = rng.random()
    if kind < 0.6:
        headers += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
        text = "\n".join(headers) + "\n\n" + body
    elif kind < 0.8:
        boundary = f"alt-{n}"
        html = "<html><body><p>" + body.replace("\n", "</p><p>") + "</p></body></html>\n"
        headers.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
        text = (
            "\n".join(headers)
            + "\n\n"
            + (
                f"--{boundary}\nContent-Type: text/plain; charset=utf-8\n\n{body}\n"
                f"--{boundary}\nContent-Type: text/html; charset=utf-8\n\n{html}\n--{boundary}--\n"
            )
        )
    else:
        boundary = f"mix-{n}"
        blob = rng.randbytes(int(min(rng.lognormvariate(9.5, 1.0), 400_000)))
        encoded = base64.encodebytes(blob).decode()
        name = rng.choice(["report.pdf", "photo.jpg", "Übersicht.xlsx", "notes.txt"])
        headers.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
        text = (
            "\n".join(headers)
            + "\n\n"
            + (
                f"--{boundary}\nContent-Type: text/plain; charset=utf-8\n\n{body}\n"
                f'--{boundary}\nContent-Type: application/octet-stream; name="{name}"\n'
                f'Content-Disposition: attachment; filename="{name}"\n'
                f"Content-Transfer-Encoding: base64\n\n{encoded}\n--{boundary}--\n"
            )
        )
    return text.encode("utf-8"), message_id, references, subject


def generate(root: Path, count: int, seed: int = 42, years: float = 4.0) -> Generated:
    """Write ``count`` messages under ``root`` (a new Maildir++ tree)."""
    rng = random.Random(seed)
    make_folder(root, marker=False)
    paths = {}
    for levels, _ in FOLDERS:
        if levels:
            create_folder(root, MAILDIRPP, levels)
        paths[levels] = root / MAILDIRPP.directory(levels) if levels else root
    weights = [share for _, share in FOLDERS]
    start = 1_700_000_000 - years * 365 * 86400
    step = years * 365 * 86400 / max(count, 1)
    recent: list[tuple[str, list[str], str]] = []
    written = 0
    for n in range(count):
        date = start + n * step + rng.random() * step
        parent = rng.choice(recent) if recent and rng.random() < 0.4 else None
        raw, message_id, references, subject = _message(rng, n, parent, date)
        recent.append((message_id, references, subject))
        if len(recent) > 200:
            recent.pop(0)
        levels = rng.choices([lv for lv, _ in FOLDERS], weights)[0]
        folder = paths[levels]
        flags = ""
        roll = rng.random()
        if levels == ("Drafts",):
            flags = "DS"
        elif roll < 0.7:
            flags = "S" + ("R" if rng.random() < 0.2 else "") + ("F" if rng.random() < 0.05 else "")
        vsize = len(raw) + raw.count(b"\n")
        base = f"{int(date)}.M{n}P1.gen,S={len(raw)},W={vsize}"
        name = f"{base}:2,{''.join(sorted(flags))}"
        target = folder / "cur" / name
        with open(target, "wb") as handle:
            handle.write(raw)
        os.utime(target, (date, date))
        written += len(raw)
    return Generated(root, count, written)
