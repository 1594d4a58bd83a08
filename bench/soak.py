"""Three actors on one Maildir at once, then a check that nobody lost anything.

``python -m bench soak [--ops N] [--seeds 1,2] [--layouts maildir++,fs]`` runs, per
layout and seed, a real Dovecot IMAP client (APPEND, STORE, COPY, MOVE, EXPUNGE,
CREATE, RENAME, DELETE, SUBSCRIBE), a raw-file writer behaving like an MDA (tmp/ to
new/, flag renames) and JMAP writes through the core (Email/set keywords, moves,
create and destroy, Email/import, Mailbox/set), each in its own thread, with the
watcher following the disk as in production. After a short settle it checks:

- disk, IMAP and JMAP agree on every folder, message and flag (an Email whose
  copies carry different flags shows their union, DESIGN.md);
- the watcher missed nothing (a full rescan finds nothing to change);
- Email/changes and Mailbox/changes from every state the JMAP actor saw replay to
  the current ids (a client that upserts created and updated, drops destroyed);
- the last state of each type was pushed to listeners;
- no JMAP call answered serverFail, and Dovecot logged no warning or error;
- every message nobody removed is still there.

Messages are told apart by their Message-ID (each actor makes unique ones). The
test suite runs a short round (tests/test_coexistence.py); the long one writes its
figures to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import imaplib
import random
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.machine import commit, machine, write_marked
from bench.soak_actors import (
    FOLDERS,
    ImapActor,
    JmapActor,
    MdaActor,
    Shared,
    message,
    message_id_of,
    run_actor,
    selectable,
)
from maildir_jmap.store.account import Account
from maildir_jmap.store.folders import list_folders
from maildir_jmap.store.index import EMAIL, MAILBOX
from maildir_jmap.store.keywords import keywords_of
from maildir_jmap.store.keywords_file import read_keywords
from maildir_jmap.store.maildir import FileName, make_folder
from maildir_jmap.store.names import FS, MAILDIRPP
from maildir_jmap.sync.watcher import Watcher

LAYOUTS = {"maildir++": MAILDIRPP, "fs": FS}
IMAP_FLAGS = {r"\Seen": "$seen", r"\Flagged": "$flagged", r"\Answered": "$answered",
              r"\Draft": "$draft"}  # fmt: skip


@dataclass
class Report:
    layout: str
    seed: int
    ops: int
    seconds: float = 0.0
    disagreements: list[str] = field(default_factory=list)
    missed: int = 0
    replay_errors: list[str] = field(default_factory=list)
    server_fails: list[str] = field(default_factory=list)
    dovecot_complaints: list[str] = field(default_factory=list)
    save_races: list[str] = field(default_factory=list)
    """Dovecot's errors for a save whose folder a JMAP rename or destroy moved away
    between our look at tmp/ and the rename (``SAVE_RACE``). Dovecot logs the same
    between two of its own sessions, far more often (``python -m bench
    dovecot-race``): counted apart, not hidden."""
    lost: list[str] = field(default_factory=list)
    gone_with_folder: list[str] = field(default_factory=list)
    """Messages an IMAP DELETE took with its folder while a JMAP move put them
    there (``Shared.raced_delete``): the harness's bookkeeping could not know, no
    server lost them. Counted apart, not hidden."""
    unpushed: list[str] = field(default_factory=list)
    actor_errors: list[str] = field(default_factory=list)
    imap_ops: int = 0
    reconnects: int = 0  # Dovecot dropped the IMAP session: its folder was removed

    @property
    def clean(self) -> bool:
        return not (
            self.disagreements or self.missed or self.replay_errors or self.server_fails
            or self.dovecot_complaints or self.lost or self.unpushed or self.actor_errors
        )  # fmt: skip


SAVE_RACE = re.compile(
    r"Error: (Mailbox [^:]+: )?(open|unlink|rename|fdatasync_path)\([^)]*/(tmp|new)(/[^)]*)?"
    r"(, [^)]*)?\) failed: No such file or directory"
)
"""The lines Dovecot logs when a folder is renamed or deleted under one of its
saves: the file it wrote into tmp/ (or moved to new/) is no longer there."""


def run(layout_name: str, seed: int, ops: int, workdir: Path) -> Report:
    from tests.dovecot import Dovecot

    report = Report(layout_name, seed, ops)
    layout = LAYOUTS[layout_name]
    root = workdir / f"Maildir-{layout_name}-{seed}"
    make_folder(root, marker=False)
    dovecot = Dovecot(
        root, workdir / f"d{seed}{layout_name[0]}", layout_name
    ).start()  # short: socket paths
    rng = random.Random(seed)
    shared = Shared()
    try:
        setup = dovecot.imap()
        for name in FOLDERS:
            setup.create(name)
        for n in range(30):
            setup.append(rng.choice(["INBOX", *FOLDERS]), None, None,
                         message(f"seed-{n}@soak", f"seed {n}"))  # fmt: skip
        setup.logout()
        account = Account.open("alice", root, workdir / f"state-{layout_name}-{seed}",
                               layout=layout)  # fmt: skip
        pushed: dict[str, str] = {}
        account.listeners.append(lambda _account, states: pushed.update(states))
        watcher = Watcher(account, rescan_every=3600).start()
        sep = "." if layout is MAILDIRPP else "/"
        imap = ImapActor(dovecot, random.Random(seed + 1), shared, sep)
        mda = MdaActor(account, random.Random(seed + 2))
        jmap = JmapActor(account, random.Random(seed + 3), shared, sep)
        started = time.monotonic()
        threads = [
            threading.Thread(target=run_actor, args=(actor, ops // 3, shared))
            for actor in (imap, mda, jmap)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        report.seconds = time.monotonic() - started
        try:
            imap.client.logout()
        except (imaplib.IMAP4.error, OSError):
            with contextlib.suppress(OSError):
                imap.client.shutdown()
        report.actor_errors = list(shared.errors)
        report.imap_ops, report.reconnects = imap.n, imap.reconnects
        settle(watcher)
        report.missed = count_missed(account)
        watcher.stop()
        check(report, account, dovecot, jmap, shared, pushed)
    finally:
        dovecot.stop()
    return report


def settle(watcher: Watcher, quiet: float = 0.5, limit: float = 10.0) -> None:
    """Until the watcher has run no batch for ``quiet`` seconds."""
    deadline = time.monotonic() + limit
    time.sleep(0.3)
    last = watcher.batches
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if watcher.batches != last:
            last, quiet_since = watcher.batches, time.monotonic()
        elif time.monotonic() - quiet_since > quiet:
            return


def count_missed(account: Account) -> int:
    change = account.rescan()
    return (
        len(change.emails)
        + len(change.emails_gone)
        + len(change.mailboxes)
        + len(change.mailboxes_gone)
    )


View = dict[tuple[str, ...], dict[str, list[frozenset[str]]]]
"""levels -> Message-ID -> the keywords of each copy in that folder (IMAP COPY and
MOVE may put two copies of one message into one folder)."""


def disk_view(account: Account) -> View:
    """What the files themselves say."""
    out: View = {}
    root = account.maildir
    for folder in list_folders(root, account.layout):
        if not folder.selectable:
            continue
        path = root / folder.directory
        letters = read_keywords(path)
        messages: dict[str, list[frozenset[str]]] = {}
        for sub in ("cur", "new"):
            for file in (path / sub).iterdir() if (path / sub).is_dir() else ():
                parsed = FileName.parse(file.name)
                if "T" in parsed.flags:
                    continue
                mid = message_id_of(file.read_bytes())
                if mid:
                    keywords = frozenset(keywords_of(parsed.flags, parsed.letters, letters))
                    messages.setdefault(mid, []).append(keywords)
        out[folder.levels] = {mid: sorted(copies, key=sorted) for mid, copies in messages.items()}
    return out


def imap_view(dovecot: Any, sep: str) -> View:
    """What a fresh IMAP session says (messages marked \\Deleted left out)."""
    client = dovecot.imap()
    out: View = {}
    try:
        for name in selectable(client):
            typ, _ = client.select(name, readonly=True)
            if typ != "OK":
                continue
            typ, data = client.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            messages: dict[str, list[frozenset[str]]] = {}
            for item in data if typ == "OK" else []:
                if not isinstance(item, tuple):
                    continue
                match = re.search(rb"FLAGS \(([^)]*)\)", item[0])
                flags = match.group(1).decode().split() if match else []
                if r"\Deleted" in flags:
                    continue
                keywords = frozenset(IMAP_FLAGS.get(f, f.lower()) for f in flags if f != r"\Recent")
                mid = message_id_of(item[1])
                if mid:
                    messages.setdefault(mid, []).append(keywords)
            levels = () if name == "INBOX" else tuple(name.split(sep))
            out[levels] = {mid: sorted(copies, key=sorted) for mid, copies in messages.items()}
    finally:
        client.logout()
    return out


def check(
    report: Report, account: Account, dovecot: Any, jmap: JmapActor, shared: Shared,
    pushed: dict[str, str],
) -> None:  # fmt: skip
    sep = "." if account.layout is MAILDIRPP else "/"
    disk = disk_view(account)
    imap = imap_view(dovecot, sep)
    for levels in sorted(set(disk) | set(imap)):
        if disk.get(levels) != imap.get(levels):
            report.disagreements.append(
                f"IMAP/disk {levels}: {_diff(disk.get(levels), imap.get(levels))}"
            )
    # JMAP through the core: every Email's folders and keywords.
    boxes = {m["id"]: m for m in jmap.call("Mailbox/get", ids=None)["list"]}
    levels_of = {m.id: m.levels for m in account.index.mailboxes.values()}
    ids = jmap.call("Email/query", limit=100_000)["ids"]
    got = []
    for start in range(0, len(ids), 500):
        got += jmap.call("Email/get", ids=ids[start : start + 500],
                         properties=["messageId", "mailboxIds", "keywords"])["list"]  # fmt: skip
    jmap_folders: dict[tuple[str, ...], dict[str, frozenset[str]]] = {}
    for email in got:
        mid = (email["messageId"] or [None])[0]
        for box_id in email["mailboxIds"]:
            if box_id in boxes:
                jmap_folders.setdefault(levels_of[box_id], {})[mid] = frozenset(email["keywords"])
    for levels, messages in disk.items():
        jmap_side = jmap_folders.get(levels, {})
        if set(jmap_side) != set(messages):
            report.disagreements.append(f"JMAP/disk {levels}: {_diff(messages, jmap_side)}")
    union: dict[str, set[str]] = {}
    for messages in disk.values():
        for mid, copies in messages.items():
            for keywords in copies:
                union.setdefault(mid, set()).update(keywords)
    for email in got:
        mid = (email["messageId"] or [None])[0]
        if mid in union and set(email["keywords"]) != union[mid]:
            rec = account.index.emails.get(email["id"])
            files = [f[1] + "/" + f[2] + f[3] for f in rec.files] if rec else []
            report.disagreements.append(
                f"keywords of {mid}: {sorted(email['keywords'])} vs disk {sorted(union[mid])}"
                f" (index files {files})"
            )
    # Replay /changes from every state the JMAP actor saw.
    now_emails, now_boxes = set(account.index.emails), set(account.index.mailboxes)
    for email_state, email_ids, box_state, box_ids in jmap.seen[:: max(1, len(jmap.seen) // 300)]:
        for method, state, before, now in (
            ("Email/changes", email_state, email_ids, now_emails),
            ("Mailbox/changes", box_state, box_ids, now_boxes),
        ):
            changes = jmap.call(method, sinceState=state)
            if not changes:
                report.replay_errors.append(f"{method} from {state}: refused")
                continue
            created, destroyed = set(changes["created"]), set(changes["destroyed"])
            replayed = (before - destroyed) | created | set(changes["updated"])
            wrong = (now - replayed) | (replayed - now) | (created & before)
            if wrong:
                report.replay_errors.append(f"{method} from {state}: {sorted(wrong)[:5]}")
    for type_name in (EMAIL, MAILBOX):
        if pushed.get(type_name) != account.state(type_name):
            report.unpushed.append(
                f"{type_name}: last push {pushed.get(type_name)}, now {account.state(type_name)}"
            )
    report.server_fails = list(jmap.server_fails)
    log = (dovecot.workdir / "dovecot.log").read_text(errors="replace")
    complaints = [ln for ln in log.splitlines() if "Warning:" in ln or "Error:" in ln]
    report.save_races = [ln for ln in complaints if SAVE_RACE.search(ln)]
    report.dovecot_complaints = [ln for ln in complaints if not SAVE_RACE.search(ln)]
    report.save_races += copy_races(report.dovecot_complaints, shared, set(disk), sep)
    report.dovecot_complaints = [ln for ln in report.dovecot_complaints
                                 if ln not in report.save_races]  # fmt: skip
    present = {mid for messages in disk.values() for mid in messages}
    missing = [f"seed-{n}@soak" for n in range(30)]
    missing = [m for m in missing if m not in present and m not in shared.removed]
    for mid in missing:
        raced = shared.raced_delete(mid)
        if raced:
            report.gone_with_folder.append(raced)
        else:
            report.lost.append(f"{mid} ({'; '.join(shared.history(mid)) or 'never moved'})")


def _diff(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    a, b = a or {}, b or {}
    only_a = sorted(set(a) - set(b))[:3]
    only_b = sorted(set(b) - set(a))[:3]
    flags = sorted(k for k in set(a) & set(b) if a[k] != b[k])[:3]
    differ = [(k, a[k], b[k]) for k in flags]
    return f"only first {only_a}, only second {only_b}, flags differ {differ}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__)
    parser.add_argument("--ops", type=int, default=20_000, help="operations per layout and seed")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--layouts", default="maildir++,fs")
    parser.add_argument("--output", help="also write the figures into this BENCHMARKS.md")
    args = parser.parse_args(argv)
    import tempfile

    reports = []
    with tempfile.TemporaryDirectory() as work:
        for layout in args.layouts.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                report = run(layout, seed, args.ops, Path(work))
                reports.append(report)
                print(summary_row(report), flush=True)
                for problem in problems(report)[:20] + notes(report):
                    print("   ", problem)
    if args.output:
        write_section(Path(args.output), reports)
    return 0 if all(r.clean for r in reports) else 1


COPY_RACE = re.compile(
    r"Error: Mailbox (?P<folder>[^:]+): maildir_file_do\(.*\): "
    r"Filename keeps changing for UID=(?P<uid>\d+)"
)
"""What Dovecot logs when a COPY or MOVE hard-links a message into a folder whose
tmp/ went away after Dovecot looked (a JMAP rename or destroy of the target):
link() answers ENOENT, which Dovecot's do_hardlink (maildir-copy.c) takes for the
*source* file having been renamed, so it rescans the source ten times and gives
up, naming the source folder and UID. The same save race as ``SAVE_RACE``,
reported through the copy path."""


def copy_races(
    lines: list[str], shared: Shared, folders: set[tuple[str, ...]], sep: str
) -> list[str]:
    """The ``COPY_RACE`` lines the soak can account for: each must name the source
    folder and UID of an IMAP COPY or MOVE that Dovecot refused, into a folder
    that is not there afterwards (renamed or destroyed meanwhile). Any other
    such line stays a complaint."""

    def levels(name: str) -> tuple[str, ...]:
        return () if name == "INBOX" else tuple(name.split(sep))

    explained = {(source, uid) for source, uid, target in shared.refused_copies
                 if levels(target) not in folders}  # fmt: skip
    out = []
    for line in lines:
        match = COPY_RACE.search(line)
        if match and (match["folder"], match["uid"]) in explained:
            out.append(line)
    return out


def problems(report: Report) -> list[str]:
    return [*report.actor_errors, *report.server_fails, *report.disagreements,
            *report.replay_errors, *report.unpushed, *report.dovecot_complaints,
            *(f"lost {m}" for m in report.lost)]  # fmt: skip


def notes(report: Report) -> list[str]:
    """What the run saw that is not a fault: printed, never failing the run."""
    return [f"gone with its folder: {m}" for m in report.gone_with_folder]


def summary_row(r: Report) -> str:
    return (
        f"| {r.layout} | {r.seed} | {r.ops} ({r.imap_ops} IMAP, {r.reconnects} re-logins) "
        f"| {r.seconds:.0f} s | {len(r.disagreements)} | "
        f"{r.missed} | {len(r.replay_errors)} | {len(r.server_fails)} | "
        f"{len(r.dovecot_complaints)} | {len(r.save_races)} | {len(r.lost)} | "
        f"{len(r.gone_with_folder)} | {len(r.unpushed)} |"
    )


def write_section(path: Path, reports: list[Report]) -> None:
    header = (
        "| layout | seed | ops | time | disagreements | missed by the watcher | replay errors "
        "| serverFail | Dovecot warnings | saves racing a folder rename | lost "
        "| gone with a deleted folder | unpushed |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    body = (
        "## Coexistence soak (`python -m bench soak`)\n\n"
        "Three actors at once on one Maildir per run: a Dovecot IMAP client, an MDA-like raw "
        "writer and JMAP writes (bench/soak.py says what each does and what is checked). "
        f"Machine: {machine()}; commit {commit()}; "
        f"{datetime.date.today().isoformat()}.\n\n"
        + header
        + "\n".join(summary_row(r) for r in reports)
    )
    write_marked(path, "soak", body)
