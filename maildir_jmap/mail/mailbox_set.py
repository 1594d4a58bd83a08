"""Mailbox/set (RFC 8621 §2.5): folders created, renamed, moved and deleted on disk
so that Dovecot sees the same tree (MAILDIR.md §9), subscriptions kept in its file.

Each create, update and destroy is committed on its own, so later operations in
the same call (a child created under a parent created just before) see it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from typing import Any

from maildir_jmap.core import standard
from maildir_jmap.core.dispatch import AccountAccess, Context, Method
from maildir_jmap.core.errors import PropertyErrors, SetError, invalid_properties
from maildir_jmap.core.patch import apply_patch
from maildir_jmap.core.records import Handler, Kind
from maildir_jmap.core.types import JSONObject, arg_bool, is_unsigned_int
from maildir_jmap.mail.mailbox import (
    SPEC,
    TREE_OPTIONS,
    MailboxRecords,
    mailbox_name,
    parent_id,
    records_for,
    to_json,
    tree_options,
    updated_properties,
)
from maildir_jmap.mail.records import account_of
from maildir_jmap.store import folders
from maildir_jmap.store.email_record import flat_files
from maildir_jmap.store.maildir import remove_file
from maildir_jmap.store.names import BadName, check_name
from maildir_jmap.store.records import Change, MailboxRecord

log = logging.getLogger(__name__)

SETTABLE = ("name", "parentId", "role", "sortOrder", "isSubscribed")
SERVER_SET = ("id", "totalEmails", "unreadEmails", "totalThreads", "unreadThreads", "myRights")
# IANA "IMAP Mailbox Name Attributes" usable as roles (RFC 8621 §2), lowercased.
ROLES = frozenset(
    [
        "all",
        "archive",
        "drafts",
        "flagged",
        "important",
        "junk",
        "sent",
        "trash",
        "snoozed",
        "scheduled",
        "memos",
    ]
)
MAX_DEPTH = 20
MAX_SORT_ORDER = 2**31


class MailboxSetRecords(MailboxRecords):
    """Adds create/update/destroy to the read side."""

    # -- helpers -----------------------------------------------------------------------

    def _commit(self, change: Change) -> None:
        self.account.commit(change)

    def _resolve_parent(self, ctx: Context, value: Any) -> MailboxRecord | None:
        if value is None:
            return None
        if isinstance(value, str) and value.startswith("#"):
            value = ctx.created_ids.get(value[1:])
        rec = self.index.mailboxes.get(value) if isinstance(value, str) else None
        if rec is None:
            raise invalid_properties("parentId", description="no such parent Mailbox")
        return rec

    def _on_disk(self, rec: MailboxRecord) -> bool:
        path = self.account.maildir / rec.directory
        if rec.selectable:
            return (path / "cur").is_dir()
        # A parent without a folder of its own: Maildir++'s is virtual (its
        # children say it exists), LAYOUT=fs's is a plain directory.
        return self.account.layout.name == "maildir++" or path.is_dir()

    def _child_levels(self, parent: MailboxRecord | None, name: str) -> tuple[str, ...]:
        if parent is None:
            return (name,)
        if not parent.levels:  # children of INBOX live at INBOX.name (MAILDIR.md §1)
            return ("INBOX", name)
        return (*parent.levels, name)

    def _check_placement(
        self, name: Any, parent: MailboxRecord | None, moving: MailboxRecord | None = None
    ) -> tuple[str, tuple[str, ...]]:
        try:
            clean = check_name(name, self.account.layout, top_level=parent is None)
        except BadName as exc:
            raise invalid_properties("name", description=str(exc)) from None
        levels = self._child_levels(parent, clean)
        if len(levels) > MAX_DEPTH:
            raise invalid_properties("parentId", description=f"at most {MAX_DEPTH} levels")
        parent_key = parent.id if parent else None
        layout_dir = self.account.layout.directory
        for other in self.index.mailboxes.values():
            if other is moving:
                continue
            if (
                mailbox_name(other) == clean
                and parent_id(self.index, other, layout_dir) == parent_key
            ):
                if moving is None:
                    # RFC 8620 §5.3 alreadyExists, as clients and the conformance
                    # suites expect of a create; a rename onto a sibling's name has
                    # no such SetError and stays invalidProperties.
                    raise SetError(
                        "alreadyExists", "a sibling has this name already", existingId=other.id
                    )
                raise invalid_properties("name", description="a sibling has this name already")
        directory = layout_dir(levels)
        if directory in self.index.by_directory or (self.account.maildir / directory).exists():
            raise invalid_properties("name", description="a folder with this name exists")
        return clean, levels

    def _check_role(self, role: Any, rec: MailboxRecord | None) -> str | None:
        if role is None:
            return None
        if not isinstance(role, str) or role not in ROLES:
            raise invalid_properties("role", description="not a role a Mailbox can take")
        for other in self.index.mailboxes.values():
            if other.role == role and other is not rec:
                raise invalid_properties("role", description="another Mailbox has this role")
        return role

    def _set_subscription(
        self, levels: tuple[str, ...], on: bool, old: tuple[str, ...] | None = None
    ) -> None:
        root = self.account.maildir
        subscribed = folders.read_subscriptions(root)
        before = set(subscribed)
        if old is not None:
            subscribed.discard(old)
        if on:
            subscribed.add(levels)
        else:
            subscribed.discard(levels)
        if subscribed != before:
            folders.write_subscriptions(root, subscribed)

    # -- create ----------------------------------------------------------------------------

    def create(self, ctx: Context, creation_id: str, obj: JSONObject) -> JSONObject:
        errors = PropertyErrors()
        unknown = [k for k in obj if k not in SETTABLE]
        if unknown:
            errors.add(*unknown, description="not settable on create")
        if "name" not in obj:
            errors.add("name", description="a Mailbox needs a name")
        parent = errors.check(lambda: self._resolve_parent(ctx, obj.get("parentId")), None)
        role = errors.check(lambda: self._check_role(obj.get("role"), None), None)
        sort_order = obj.get("sortOrder", 0)
        if not is_unsigned_int(sort_order) or sort_order >= MAX_SORT_ORDER:
            errors.add("sortOrder", description="sortOrder must be an UnsignedInt below 2^31")
        subscribed = obj.get("isSubscribed", True)  # RFC 8621 §2: true for the user's own
        if not isinstance(subscribed, bool):
            errors.add("isSubscribed", description="isSubscribed must be a Boolean")
        levels: tuple[str, ...] = ()
        if "name" in obj and "parentId" not in errors.properties:
            placed = errors.check(lambda: self._check_placement(obj["name"], parent), None)
            levels = placed[1] if placed is not None else ()
        errors.raise_any()
        if parent is not None and parent.levels and not self._on_disk(parent):
            # The parent was renamed or deleted by IMAP since our last reconcile;
            # making its directory again would bring back a folder IMAP removed.
            self.account.rescan()
            raise invalid_properties("parentId", description="the parent Mailbox is gone")
        folder = folders.create_folder(self.account.maildir, self.account.layout, levels)
        if subscribed:
            self._set_subscription(levels, True)
        rec = MailboxRecord(
            self.index.new_mailbox_id(), folder.directory, levels, role, sort_order, subscribed
        )
        self._commit(Change(mailboxes={rec.id: rec}))
        view = to_json(self.account, self.index.mailboxes[rec.id], self.read_only)
        return {k: v for k, v in view.items() if k not in obj or k == "id"}

    # -- update ----------------------------------------------------------------------------

    def update(self, ctx: Context, record_id: str, patch: JSONObject) -> JSONObject | None:
        rec = self.index.mailboxes.get(record_id)
        if rec is None:
            raise SetError("notFound")
        current = to_json(self.account, rec, self.read_only)
        patched = apply_patch(current, patch)
        unknown = [k for k in patched if k not in current]
        if unknown:
            raise invalid_properties(*unknown)
        changed_server = [k for k in SERVER_SET if patched.get(k) != current[k]]
        if changed_server:
            raise invalid_properties(*changed_server, description="server-set")
        new = dataclasses.replace(rec)
        change = Change()
        parent_value = patched["parentId"]
        if isinstance(parent_value, str) and parent_value.startswith("#"):
            parent_value = ctx.created_ids.get(parent_value[1:], parent_value)
        moved = patched["name"] != current["name"] or parent_value != current["parentId"]
        if moved:
            if not rec.levels:
                raise SetError("forbidden", "INBOX cannot be renamed or moved")
            parent = self._resolve_parent(ctx, parent_value)
            if parent is not None and self._is_descendant(parent, rec):
                raise invalid_properties(
                    "parentId", description="a Mailbox cannot be its own ancestor"
                )
            _, levels = self._check_placement(patched["name"], parent, moving=rec)
            try:
                if not self._on_disk(rec):
                    raise FileNotFoundError(rec.directory)
                self._rename(rec, levels, change)
            except (FileNotFoundError, NotADirectoryError):
                # Renamed or deleted by IMAP since our last reconcile.
                self.account.rescan()
                raise SetError("notFound", "the folder was renamed or deleted meanwhile") from None
            new = change.mailboxes[rec.id]
        if patched["role"] != current["role"]:
            if not rec.levels or patched["role"] == "inbox":
                raise SetError("forbidden", "the inbox role belongs to INBOX")
            new.role = self._check_role(patched["role"], rec)
        sort_order = patched["sortOrder"]
        if not is_unsigned_int(sort_order) or sort_order >= MAX_SORT_ORDER:
            raise invalid_properties("sortOrder")
        new.sort_order = sort_order
        if not isinstance(patched["isSubscribed"], bool):
            raise invalid_properties("isSubscribed")
        if patched["isSubscribed"] != rec.subscribed:
            self._set_subscription(new.levels, patched["isSubscribed"])
            new.subscribed = patched["isSubscribed"]
        if (new.role, new.sort_order, new.subscribed, new.levels) != (
            rec.role,
            rec.sort_order,
            rec.subscribed,
            rec.levels,
        ):
            change.mailboxes[rec.id] = new
        if change:
            self._commit(change)
        return None

    def _is_descendant(self, candidate: MailboxRecord, ancestor: MailboxRecord) -> bool:
        levels = candidate.levels
        return levels[: len(ancestor.levels)] == ancestor.levels

    def _rename(self, rec: MailboxRecord, levels: tuple[str, ...], change: Change) -> None:
        """Move a folder (and its children) on disk, then every affected record."""
        old = rec.levels
        layout = self.account.layout
        folders.rename_folder(self.account.maildir, layout, old, levels)
        subscribed = folders.read_subscriptions(self.account.maildir)
        updated_subs = set(subscribed)
        for other in list(self.index.mailboxes.values()):
            if other.levels[: len(old)] != old or not other.levels:
                continue
            new_levels = levels + other.levels[len(old) :]
            change.mailboxes[other.id] = dataclasses.replace(
                other, levels=new_levels, directory=layout.directory(new_levels)
            )
            # MAILDIR.md §9: a rename does not carry subscriptions; we move them.
            if other.levels in updated_subs:
                updated_subs.discard(other.levels)
                updated_subs.add(new_levels)
        if updated_subs != subscribed:
            folders.write_subscriptions(self.account.maildir, updated_subs)

    # -- destroy ---------------------------------------------------------------------------

    def destroy(self, ctx: Context, record_id: str, options: JSONObject) -> None:
        rec = self.index.mailboxes.get(record_id)
        if rec is None:
            raise SetError("notFound")
        if not rec.levels:
            raise SetError("forbidden", "INBOX cannot be destroyed")
        layout_dir = self.account.layout.directory
        if any(
            parent_id(self.index, m, layout_dir) == record_id for m in self.index.mailboxes.values()
        ):
            raise SetError("mailboxHasChild")
        inside = [e for e in self.index.emails.values() if record_id in e.mailbox_ids]
        if inside and not options.get("onDestroyRemoveEmails", False):
            raise SetError("mailboxHasEmail")
        root = self.account.maildir
        folder_path = root / rec.directory
        change = Change(mailboxes_gone={record_id})
        for email in inside:
            for mailbox_id, subdir, base, info in email.files:
                if mailbox_id == record_id:
                    with contextlib.suppress(FileNotFoundError):
                        remove_file(folder_path / subdir / (base + info))
            remaining = tuple(f for f in email.files if f[0] != record_id)
            kept = dataclasses.replace(email, flat=flat_files(remaining)) if remaining else None
            if kept is not None:
                change.emails[email.id] = kept
            else:
                change.emails_gone.add(email.id)
            if self.account.quota is not None:  # maildirsize, as Dovecot's DELETE keeps it
                self.account.quota.charge(self.index, [email], [kept])
        if folder_path.exists() and rec.selectable:
            try:
                folders.delete_folder(root, self.account.layout, rec.levels)
            except OSError as exc:
                # New mail arrived meanwhile: keep it, and keep the Mailbox.
                log.warning("not deleting %s: %s", folder_path, exc)
                self._commit(Change(emails=change.emails, emails_gone=change.emails_gone))
                raise SetError("mailboxHasEmail", "new mail arrived in this Mailbox") from None
        elif folder_path.is_dir():
            with contextlib.suppress(OSError):
                folder_path.rmdir()  # an fs-layout \Noselect directory
        self._set_subscription(rec.levels, False)
        self._commit(change)

    def commit(self) -> None:
        """Each operation committed itself."""


def set_records(ctx: Context, access: AccountAccess) -> MailboxSetRecords:
    return MailboxSetRecords(account_of(access), access.is_read_only)


def _destroy_option(ctx: Context, args: JSONObject, set_: Handler) -> JSONObject:
    arg_bool(args, "onDestroyRemoveEmails", False)  # §2.5, type-checked first
    return set_(ctx, args)


def methods() -> list[Method]:
    """Every Mailbox method (RFC 8621 §2)."""
    return standard.methods(
        SPEC,
        get=records_for,
        changes=Kind(records_for, around=updated_properties),
        query=Kind(records_for, extra=TREE_OPTIONS, around=tree_options),
        set=Kind(set_records, extra=("onDestroyRemoveEmails",), around=_destroy_option),
    )
