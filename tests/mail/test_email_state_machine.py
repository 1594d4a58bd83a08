"""Random interleavings of JMAP writes and Dovecot-side file operations (STYLE.md:
a RuleBasedStateMachine). After every step: Email/changes from any earlier state,
applied to what a client saw then, gives what Email/get says now; and a rescan of
the disk finds nothing the index does not already know."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from maildir_jmap.core.capabilities import CORE, MAIL, CoreLimits
from maildir_jmap.core.dispatch import AccountAccess, Context, process
from maildir_jmap.core.request import request_from_json
from maildir_jmap.server.registry import build_registry
from maildir_jmap.store.account import Account
from maildir_jmap.store.maildir import FileName, deliver, make_folder

REGISTRY = build_registry()
FOLDERS = ("", ".Archive", ".Trash")
KEYWORDS = ("$seen", "$flagged", "work")


class EmailMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="mj-sm-"))
        self.root = self.tmp / "Maildir"
        make_folder(self.root, marker=False)
        for folder in FOLDERS[1:]:
            make_folder(self.root / folder, marker=True)
        self.counter = 0
        for _ in range(3):
            self._deliver("")
        self.account = Account.open("u", self.root, self.tmp / "state")
        self.seen: list[tuple[str, dict[str, Any]]] = []  # (state, view then)
        self.remember()

    def teardown(self) -> None:
        self.account.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------------------

    def _deliver(self, folder: str) -> Path:
        self.counter += 1
        raw = f"Subject: m{self.counter}\nMessage-ID: <m{self.counter}@x>\n\nbody {self.counter}\n"
        return deliver(self.root / folder if folder else self.root, raw.encode(), flags="S")

    def call(self, name: str, **args: Any) -> dict[str, Any]:
        account = self.account
        access = AccountAccess(account.account_id, "u", {MAIL: {}}, backend=account)
        limits = CoreLimits()
        ctx = Context("u", {account.account_id: access}, limits, registry=REGISTRY)
        calls = [[name, {"accountId": account.account_id, **args}, "c"]]
        request = request_from_json(
            {"using": [CORE, MAIL], "methodCalls": calls}, limits, REGISTRY.capabilities()
        )
        with account.lock:
            ((method, result, _),) = process(request, ctx, REGISTRY)["methodResponses"]
        assert method == name, result
        out: dict[str, Any] = result
        return out

    def view(self) -> dict[str, Any]:
        got = self.call("Email/get", ids=None, properties=["mailboxIds", "keywords"])
        assert got["notFound"] == []
        return {e["id"]: (e["mailboxIds"], e["keywords"]) for e in got["list"]}

    def remember(self) -> None:
        self.seen.append((self.account.state("Email"), self.view()))

    def email_ids(self) -> list[str]:
        """In an order that does not depend on time (for hypothesis' replays)."""
        emails = self.account.index.emails
        return sorted(emails, key=lambda e: emails[e].subject)

    def box(self, folder: str) -> str:
        return self.account.index.by_directory[folder]

    def files(self) -> list[Path]:
        """Every message file, ordered by folder and Subject (names hold the time)."""
        found = [
            p
            for folder in FOLDERS
            for sub in ("cur", "new")
            for p in ((self.root / folder if folder else self.root) / sub).iterdir()
        ]
        return sorted(found, key=lambda p: (str(p.parent.parent), p.read_bytes()))

    # -- JMAP writes -----------------------------------------------------------------------

    @precondition(lambda self: self.account.index.emails)
    @rule(data=st.data(), keyword=st.sampled_from(KEYWORDS), on=st.booleans())
    def jmap_keyword(self, data: st.DataObject, keyword: str, on: bool) -> None:
        eid = data.draw(st.sampled_from(self.email_ids()))
        result = self.call("Email/set", update={eid: {f"keywords/{keyword}": on or None}})
        assert result["notUpdated"] is None, result

    @precondition(lambda self: self.account.index.emails)
    @rule(data=st.data(), folders=st.sets(st.sampled_from(FOLDERS), min_size=1))
    def jmap_mailboxes(self, data: st.DataObject, folders: set[str]) -> None:
        eid = data.draw(st.sampled_from(self.email_ids()))
        boxes = {self.box(f): True for f in folders}
        result = self.call("Email/set", update={eid: {"mailboxIds": boxes}})
        assert result["notUpdated"] is None, result

    @precondition(lambda self: self.account.index.emails)
    @rule(data=st.data())
    def jmap_destroy(self, data: st.DataObject) -> None:
        eid = data.draw(st.sampled_from(self.email_ids()))
        assert self.call("Email/set", destroy=[eid])["destroyed"] == [eid]

    @rule(folder=st.sampled_from(FOLDERS), keywords=st.sets(st.sampled_from(KEYWORDS)))
    def jmap_create(self, folder: str, keywords: set[str]) -> None:
        self.counter += 1
        create = {
            "mailboxIds": {self.box(folder): True},
            "keywords": dict.fromkeys(keywords, True),
            "subject": f"created {self.counter}",
            "messageId": [f"c{self.counter}@x"],
            "sentAt": "2026-01-01T00:00:00Z",
        }
        assert self.call("Email/set", create={"c": create})["created"]

    # -- Dovecot's side (file operations, then the reconcile the watcher would run) --------

    def reconcile(self, *paths: Path) -> None:
        """What the watcher does after these file events: look only at those files
        (the invariant's full rescan then checks nothing was missed)."""
        names: dict[str, set[tuple[str, str]]] = {}
        for path in paths:
            folder = path.parent.parent
            directory = "" if folder == self.root else folder.name
            names.setdefault(directory, set()).add((path.parent.name, path.name))
        self.account.rescan(set(), names=names)

    @precondition(lambda self: self.files())
    @rule(data=st.data())
    def disk_toggle_flagged(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(self.files()))
        parsed = FileName.parse(path.name)
        flags = parsed.flags.replace("F", "") if "F" in parsed.flags else parsed.flags + "F"
        target = path.parent.parent / "cur" / parsed.with_marks(flags, parsed.letters).name()
        os.rename(path, target)
        self.reconcile(path, target)

    @precondition(lambda self: self.files())
    @rule(data=st.data(), folder=st.sampled_from(FOLDERS))
    def disk_move(self, data: st.DataObject, folder: str) -> None:
        path = data.draw(st.sampled_from(self.files()))
        target_folder = self.root / folder if folder else self.root
        if target_folder == path.parent.parent:
            return
        parsed = FileName.parse(path.name)
        taken = {
            FileName.parse(p.name).base
            for sub in ("cur", "new")
            for p in (target_folder / sub).iterdir()
        }
        # Our copies share a base name; Dovecot gives a colliding move a new one,
        # unique in the folder (a base name never occurs twice in one folder).
        base = parsed.base
        while base in taken:
            base += "x"
        # Dovecot remaps keyword letters into the target's dovecot-keywords; a bare
        # rename carrying them would give them whatever meaning the target assigns
        # them later (as it would for Dovecot), so this model's moves drop them.
        name = FileName(base, parsed.flags, "", parsed.info).name()
        os.rename(path, target_folder / "cur" / name)
        self.reconcile(path, target_folder / "cur" / name)

    @precondition(lambda self: self.files())
    @rule(data=st.data())
    def disk_expunge(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(self.files()))
        path.unlink()
        self.reconcile(path)

    @rule(folder=st.sampled_from(FOLDERS))
    def disk_deliver(self, folder: str) -> None:
        self.reconcile(self._deliver(folder))

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def changes_replay_to_the_current_view(self) -> None:
        now = self.view()
        for state, then in self.seen:
            changes = self.call("Email/changes", sinceState=state)
            assert not changes["hasMoreChanges"]
            replayed = dict(then)
            for eid in changes["destroyed"]:
                replayed.pop(eid, None)
            for eid in changes["created"] + changes["updated"]:
                replayed[eid] = now[eid]
            assert replayed == now, state
        self.remember()

    @invariant()
    def the_disk_has_nothing_new_to_say(self) -> None:
        state = self.account.state("Email")
        self.account.rescan()
        assert self.account.state("Email") == state


EmailMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
test_email_writes_and_dovecot_changes = EmailMachine.TestCase
