"""The three actors of the coexistence soak (bench/soak.py): a Dovecot IMAP
client, an MDA-like raw writer and JMAP writes through the core, each taking one
random step at a time; and ``Shared``, what they tell each other (which
Message-IDs were removed on purpose)."""

from __future__ import annotations

import contextlib
import imaplib
import random
import sys
import threading
import time
from typing import Any

from maildir_jmap.mime.headers import as_message_ids
from maildir_jmap.mime.parse import split_head
from maildir_jmap.store.account import Account
from maildir_jmap.store.folders import list_folders
from maildir_jmap.store.index import EMAIL, MAILBOX
from maildir_jmap.store.maildir import FileName, unique_name
from maildir_jmap.store.records import EmailRecord
from tests.jmap_calls import invoke

SNAPSHOT_EVERY = 7  # states kept for the /changes replay: every 7th JMAP call
FOLDERS = ["Archive", "Work", "Lists"]
KEYWORDS = ["$seen", "$flagged", "$answered", "$work", "$later", "todo"]


def message(mid: str, subject: str) -> bytes:
    return (
        f"From: soak@example.org\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
        f"Message-ID: <{mid}>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\n"
        f"Body of {subject}.\r\n"
    ).encode()


def message_id_of(raw: bytes) -> str | None:
    for name, value in split_head(raw)[0]:
        if name.lower() == "message-id":
            ids = as_message_ids(value)
            return ids[0] if ids else None
    return None


class Shared:
    """What the actors tell each other: removed Message-IDs, and a stop flag; and,
    so that a message gone with a folder can be told from a lost one, when each
    IMAP DELETE ran and when each JMAP move into a folder ran."""

    def __init__(self) -> None:
        self.removed: set[str] = set()
        self.guard = threading.Lock()
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.deletes: list[tuple[str, float, float]] = []  # folder, from, to
        self.moves: list[tuple[str, str, float, float]] = []  # Message-ID, folder, from, to
        self.refused_copies: list[tuple[str, str, str]] = []  # IMAP COPY/MOVE refused:
        # source folder, UID, target

    def remove(self, mids: set[str]) -> None:
        with self.guard:
            self.removed |= mids

    def raced_delete(self, mid: str) -> str | None:
        """How ``mid`` may have gone with a deleted folder although the deleting
        actor did not see it there: a JMAP move into that very folder ran while
        the IMAP actor listed and deleted it (DELETE takes the folder's messages
        with it, as RFC 3501 §6.3.4 allows). None when no such race happened."""
        with self.guard:
            for moved, folder, start, end in self.moves:
                for deleted, begun, done in self.deletes:
                    if moved == mid and folder == deleted and start < done and end > begun:
                        return f"{mid}: JMAP moved it into {folder} while IMAP deleted {folder}"
        return None

    def history(self, mid: str) -> list[str]:
        with self.guard:
            return [f"moved by JMAP into {f} at {a:.3f}-{b:.3f}" for m, f, a, b in self.moves
                    if m == mid] + [f"IMAP DELETE {f} at {a:.3f}-{b:.3f}"
                                    for f, a, b in self.deletes]  # fmt: skip


def selectable(client: imaplib.IMAP4) -> list[str]:
    """The folders IMAP LIST shows that can be selected."""
    typ, data = client.list()
    names = []
    for line in data if typ == "OK" else []:
        text = line.decode() if isinstance(line, bytes) else ""
        if "\\Noselect" in text or "\\NonExistent" in text:
            continue
        names.append(text.rsplit(" ", 1)[-1].strip('"'))
    return names or ["INBOX"]


class ImapActor:
    def __init__(self, dovecot: Any, rng: random.Random, shared: Shared, sep: str) -> None:
        self.dovecot = dovecot
        self.client = dovecot.imap()
        self.reconnects = 0
        self.rng = rng
        self.shared = shared
        self.sep = sep
        self.n = 0

    def folders(self) -> list[str]:
        return selectable(self.client)

    def uids(self, folder: str) -> list[str]:
        typ, _ = self.client.select(folder)
        if typ != "OK":
            return []
        typ, data = self.client.uid("SEARCH", "ALL")
        return data[0].decode().split() if typ == "OK" and data and data[0] else []

    def mids(self, uid_set: str) -> set[str]:
        typ, data = self.client.uid("FETCH", uid_set, "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        out = set()
        for item in data if typ == "OK" else []:
            if isinstance(item, tuple):
                mid = message_id_of(item[1])
                if mid:
                    out.add(mid)
        return out

    def step(self) -> None:
        try:
            self._step()
        except imaplib.IMAP4.abort:
            said = str(sys.exc_info()[1])
            if not any(word in said.lower() for word in ("deleted", "inconsistent")):
                raise  # e.g. "FETCH failed": a message Dovecot cannot serve
            # Dovecot disconnects a session whose selected folder another writer
            # deleted or renamed ("Selected mailbox was deleted", or "IMAP session
            # state is inconsistent, please relogin."), as it does for a second
            # IMAP session: log in again, as clients do.
            with contextlib.suppress(OSError):
                self.client.shutdown()
            self.client = self.dovecot.imap()
            self.reconnects += 1

    def _step(self) -> None:
        self.n += 1
        rng, c = self.rng, self.client
        roll = rng.random()
        folders = self.folders()
        folder = rng.choice(folders)
        if roll < 0.25:
            flags = " ".join(rng.sample([r"\Seen", r"\Flagged", "$work"], rng.randint(0, 2)))
            mid = f"imap-{self.n}-{rng.getrandbits(32):x}@soak"
            c.append(folder, f"({flags})" if flags else None, None, message(mid, "from imap"))
            return
        uids = self.uids(folder)
        if not uids:
            return
        uid = rng.choice(uids)
        others = [f for f in folders if f != folder]
        if roll < 0.5:
            flag = rng.choice([r"\Seen", r"\Flagged", r"\Answered", "$later", "todo"])
            c.uid("STORE", uid, rng.choice(["+FLAGS", "-FLAGS"]), f"({flag})")
        elif roll < 0.7 and others:
            target = rng.choice(others)
            typ, _ = c.uid("COPY" if roll < 0.6 else "MOVE", uid, target)
            if typ != "OK":
                with self.shared.guard:
                    self.shared.refused_copies.append((folder, uid, target))
        elif roll < 0.8:
            mids = self.mids(uid)
            self.shared.remove(mids)  # before: a race may expunge it either way
            c.uid("STORE", uid, "+FLAGS", r"(\Deleted)")
            c.uid("EXPUNGE", uid)
        elif roll < 0.86:
            c.create(f"Imap{self.n}")
        elif roll < 0.92:
            made = [f for f in folders if f.startswith(("Imap", "Jmap")) and self.sep not in f]
            if made:
                c.rename(rng.choice(made), f"Renamed{self.n}")
        elif roll < 0.96:
            made = [f for f in folders if f.startswith(("Imap", "Jmap", "Renamed"))]
            if made:
                target = rng.choice(made)
                begun = time.monotonic()
                for box_uid in self.uids(target):
                    self.shared.remove(self.mids(box_uid))
                c.select("INBOX")
                try:
                    c.delete(target)
                finally:
                    with self.shared.guard:
                        self.shared.deletes.append((target, begun, time.monotonic()))
        else:
            c.subscribe(folder) if rng.random() < 0.5 else c.unsubscribe(folder)


class MdaActor:
    def __init__(self, account: Account, rng: random.Random) -> None:
        self.root = account.maildir
        self.layout = account.layout
        self.rng = rng
        self.n = 0
        self.folders: list[str] = []

    def step(self) -> None:
        self.n += 1
        rng = self.rng
        # Like a real MDA, it knows where it delivers and looks again now and then
        # (the tree walk of a LAYOUT=fs tree with hundreds of folders costs 20 ms).
        if not self.folders or self.n % 25 == 0:
            found = list_folders(self.root, self.layout)
            self.folders = [f.directory for f in found if f.selectable]
        folder = self.root / rng.choice(self.folders)
        if rng.random() < 0.5:
            mid = f"mda-{self.n}-{rng.getrandbits(32):x}@soak"
            name = unique_name()
            try:
                (folder / "tmp" / name).write_bytes(
                    message(mid, "delivered").replace(b"\r\n", b"\n")
                )
                (folder / "tmp" / name).rename(folder / "new" / name)
            except FileNotFoundError:
                pass  # the folder was renamed or deleted meanwhile
            return
        try:
            files = [p for p in (folder / "cur").iterdir() if ":2," in p.name]
        except FileNotFoundError:
            return
        if not files:
            return
        path = rng.choice(files)
        parsed = FileName.parse(path.name)
        flag = rng.choice("SFR")
        flags = parsed.flags.replace(flag, "") if flag in parsed.flags else parsed.flags + flag
        # Dovecot or JMAP may rename it first: what a real MDA would meet.
        with contextlib.suppress(FileNotFoundError):
            path.rename(path.parent / parsed.with_marks(flags, parsed.letters).name())


class JmapActor:
    def __init__(self, account: Account, rng: random.Random, shared: Shared, sep: str) -> None:
        self.account = account
        self.sep = sep
        self.rng = rng
        self.shared = shared
        self.n = 0
        self.seen: list[tuple[str, set[str], str, set[str]]] = []
        self.calls = 0
        self.server_fails: list[str] = []

    def call(self, name: str, **args: Any) -> dict[str, Any]:
        account = self.account
        with account.lock:  # the state snapshot belongs to this very call
            method, result = invoke(account, name, **args)
            self.calls += 1
            if self.calls % SNAPSHOT_EVERY == 1:  # a client that saw this state
                self.seen.append(
                    (
                        account.state(EMAIL),
                        set(account.index.emails),
                        account.state(MAILBOX),
                        set(account.index.mailboxes),
                    )
                )
        for error in (
            [result]
            if method == "error"
            else [
                *(result.get("notCreated") or {}).values(),
                *(result.get("notUpdated") or {}).values(),
                *(result.get("notDestroyed") or {}).values(),
            ]
        ):
            if error.get("type") == "serverFail":
                self.server_fails.append(f"{name}: {error}")
        return result if method != "error" else {}

    def _message_id(self, rec: EmailRecord) -> str | None:
        """The Message-ID the soak knows the message by (the index keeps it only
        for threading)."""
        head = self.account.read_head(rec)
        return None if head is None else message_id_of(head)

    def step(self) -> None:
        self.n += 1
        rng, index = self.rng, self.account.index
        with self.account.lock:
            emails = list(index.emails.values())
            boxes = [m for m in index.mailboxes.values() if m.selectable]
        roll = rng.random()
        if roll < 0.35 and emails:
            rec = rng.choice(emails)
            patch = {f"keywords/{rng.choice(KEYWORDS)}": rng.choice([True, None])}
            self.call("Email/set", update={rec.id: patch})
        elif roll < 0.6 and emails:
            rec = rng.choice(emails)
            target = rng.sample(boxes, rng.randint(1, min(2, len(boxes))))
            message_id = self._message_id(rec)
            begun = time.monotonic()
            self.call("Email/set", update={rec.id: {"mailboxIds": {b.id: True for b in target}}})
            if message_id:
                with self.shared.guard:
                    self.shared.moves += [
                        (
                            message_id,
                            self.sep.join(b.levels) or "INBOX",
                            begun,
                            time.monotonic(),
                        )
                        for b in target
                    ]
        elif roll < 0.72:
            mid = f"jmap-{self.n}-{rng.getrandbits(32):x}@soak"
            blob = self.account.blobs.put_bytes(message(mid, "imported")).blob_id
            box = rng.choice(boxes)
            self.call("Email/import", emails={"i": {"blobId": blob, "mailboxIds": {box.id: True}}})
        elif roll < 0.8:
            self.call(
                "Email/set",
                create={
                    "c": {
                        "mailboxIds": {rng.choice(boxes).id: True},
                        "subject": f"created {self.n}",
                        "messageId": [f"jmapc-{self.n}-{rng.getrandbits(32):x}@soak"],
                        "keywords": {"$seen": True},
                    }
                },
            )
        elif roll < 0.87 and emails:
            rec = rng.choice(emails)
            message_id = self._message_id(rec)
            if message_id:
                self.shared.remove({message_id})
            self.call("Email/set", destroy=[rec.id])
        elif roll < 0.93:
            self.call("Mailbox/set", create={"m": {"name": f"Jmap{self.n}"}})
        else:
            made = [b for b in boxes if b.levels and b.levels[-1].startswith(("Jmap", "Imap"))]
            if made:
                box = rng.choice(made)
                if rng.random() < 0.5:
                    self.call("Mailbox/set", update={box.id: {"name": f"Moved{self.n}"}})
                else:
                    self.call("Mailbox/set", destroy=[box.id])


def run_actor(actor: Any, steps: int, shared: Shared) -> None:
    try:
        for _ in range(steps):
            if shared.stop.is_set():
                return
            try:
                actor.step()
            except imaplib.IMAP4.abort:
                raise  # Dovecot hung up on us: reported, never taken for a racing NO
            except imaplib.IMAP4.error:
                pass  # a NO for a racing operation is fine
    except Exception as exc:  # report, do not hide
        shared.errors.append(f"{type(actor).__name__}: {type(exc).__name__}: {exc}")
        shared.stop.set()
