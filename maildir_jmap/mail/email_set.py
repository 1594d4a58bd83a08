"""Email/set (RFC 8621 §4.6): keywords and Mailboxes changed, drafts created,
Emails destroyed, all on the Maildir Dovecot serves.

Creates are committed one by one (a later update in the same call may name
``#creationId``); updates and destroys collect into one change committed, and so
journaled with one fsync, when the call ends -- a client marking 500 Emails read
waits for one disk flush, not 500. The files are already right by then: a crash
in between leaves a disk that the next reconcile reads back into the same index.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
from typing import Any

from maildir_jmap.core import standard
from maildir_jmap.core.dispatch import AccountAccess, Context, Method
from maildir_jmap.core.errors import PropertyErrors, SetError, invalid_properties
from maildir_jmap.core.patch import parse_patch
from maildir_jmap.core.records import Copyable
from maildir_jmap.core.types import ArgumentError, JSONObject, parse_utc_date
from maildir_jmap.mail.blobs import blob_bytes
from maildir_jmap.mail.email import EMAIL_SPEC, EmailRecords
from maildir_jmap.mail.email_view import PROPERTIES
from maildir_jmap.mail.records import account_of
from maildir_jmap.mime.compose import ComposeError, MissingBlobs, TooLarge, compose
from maildir_jmap.mime.summary import Summary, email_id, summarize
from maildir_jmap.store import email_files
from maildir_jmap.store.account import Account
from maildir_jmap.store.keywords import is_keyword
from maildir_jmap.store.keywords_file import TooManyKeywords
from maildir_jmap.store.maildir import to_lf
from maildir_jmap.store.quota import OverQuota
from maildir_jmap.store.records import Change, EmailRecord

log = logging.getLogger(__name__)

MAX_MESSAGE = 50_000_000  # advertised as maxSizeAttachmentsPerEmail


def mailbox_ids(account: Account, ctx: Context, value: Any) -> set[str]:
    """A ``mailboxIds`` value (Id[Boolean], ``#creationId`` allowed): every id an
    existing Mailbox that can hold messages, at least one (§4.1.1)."""
    if not isinstance(value, dict) or not value:
        raise invalid_properties("mailboxIds", description="at least one Mailbox id")
    out = set()
    for key, flag in value.items():
        if flag is not True:
            raise invalid_properties("mailboxIds", description="values must be true")
        out.add(resolve_mailbox(account, ctx, key))
    return out


def resolve_mailbox(account: Account, ctx: Context, key: str) -> str:
    real = ctx.created_ids.get(key[1:]) if key.startswith("#") else key
    box = account.index.mailboxes.get(real or "")
    if box is None or real is None:
        raise invalid_properties("mailboxIds", description=f"no Mailbox {key!r}")
    if not box.selectable:
        raise invalid_properties("mailboxIds", description=f"Mailbox {key!r} cannot hold mail")
    return real


def keyword_set(value: Any) -> frozenset[str]:
    """A ``keywords`` value (String[Boolean]); keywords are case-insensitive and
    kept lowercase (§4.1.1)."""
    if not isinstance(value, dict):
        raise invalid_properties("keywords", description="an object of keyword: true")
    for key, flag in value.items():
        if flag is not True or not is_keyword(key):
            raise invalid_properties("keywords", description=f"not a keyword: {key!r}")
    return frozenset(k.lower() for k in value)


def received_at(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return parse_utc_date(value).timestamp()
    except ArgumentError:
        raise invalid_properties("receivedAt", description="not a UTCDate") from None


def add_email(
    account: Account,
    raw: bytes,
    boxes: set[str],
    keywords: frozenset[str],
    received: float | None,
    summary: Summary | None = None,
) -> JSONObject:
    """A new Email from ``raw`` (Email/set create, /import, /copy), committed; what
    ``created`` holds for it (§4.6, §4.8). Ids come from content, so bytes the account
    already has are ``alreadyExists`` with the ``existingId`` (§4.8, RFC 8620 §5.4)."""
    summary = summary or summarize(raw)
    existing = email_id(summary.digest)
    if existing in account.index.emails:
        raise SetError("alreadyExists", "the account has this message", existingId=existing)
    if account.quota is not None:
        # As IMAP APPEND is refused [OVERQUOTA] by Dovecot's quota plugin.
        size = account.quota.copy_size(summary.size, len(to_lf(raw)))
        quota_check(account, size, set(), boxes)
    try:
        added = email_files.add(
            account.maildir, account.index, raw, boxes, keywords, received, summary
        )
    except TooManyKeywords as exc:
        raise SetError("tooManyKeywords", str(exc)) from None
    except (FileNotFoundError, NotADirectoryError):
        gone = gone_folders(account, boxes)
        if not gone:
            raise
        account.rescan()  # the tree changed under us: let the index catch up
        raise folders_gone_error(gone) from None
    except OSError as exc:
        if exc.errno not in NO_SPACE:
            raise
        # As Dovecot answers [OVERQUOTA] "Not enough disk space"; nothing stays.
        raise SetError("overQuota", "not enough disk space for this message") from None
    rec = added.record
    account.commit(Change(emails={rec.id: rec}, message_ids=added.message_ids))
    rec = account.index.emails[rec.id]
    if account.quota is not None:
        account.quota.charge(account.index, [None], [rec])
    return {"id": rec.id, "blobId": "G" + rec.digest, "threadId": rec.thread_id, "size": rec.size}


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def quota_check(account: Account, size: int, before: set[str], after: set[str]) -> None:
    """SetError overQuota (RFC 8620 §5.3) when Dovecot's quota would refuse this."""
    assert account.quota is not None
    try:
        account.quota.check(account.index, size, before, after)
    except OverQuota as exc:
        raise SetError("overQuota", str(exc)) from None


def gone_folders(account: Account, boxes: set[str]) -> list[str]:
    """The Mailboxes of ``boxes`` whose folder is no longer on disk (an IMAP client
    renamed or deleted it while a request was writing into it)."""
    gone = []
    for mailbox_id in sorted(boxes):
        box = account.index.mailboxes.get(mailbox_id)
        if (
            box is None
            or not (
                email_files.folder_path(account.maildir, account.index, mailbox_id) / "cur"
            ).is_dir()
        ):
            gone.append(mailbox_id)
    return gone


def folders_gone_error(gone: list[str]) -> SetError:
    """§4.6/§4.8: a Mailbox that does not exist (any more) is invalidProperties on
    mailboxIds, never serverFail."""
    return invalid_properties(
        "mailboxIds", description=f"Mailbox {', '.join(gone)} was renamed or deleted meanwhile"
    )


@dataclasses.dataclass
class _Wanted:
    """An Email/set update's patch, ready to apply to the Email as it is on disk
    (twice, if the first attempt finds that Dovecot moved it)."""

    keywords: frozenset[str] | None = None
    add: set[str] = dataclasses.field(default_factory=set)
    remove: set[str] = dataclasses.field(default_factory=set)
    boxes: set[str] | None = None
    box_add: list[str] = dataclasses.field(default_factory=list)
    box_remove: list[str] = dataclasses.field(default_factory=list)

    def apply(self, rec: EmailRecord) -> tuple[set[str], email_files.KeywordEdit]:
        boxes = set(self.boxes) if self.boxes is not None else set(rec.mailbox_ids)
        boxes |= set(self.box_add)
        boxes -= set(self.box_remove)
        edit = email_files.KeywordEdit(self.keywords, frozenset(self.add), frozenset(self.remove))
        return boxes, edit


class EmailSetRecords(EmailRecords):
    def __init__(self, account: Account) -> None:
        super().__init__(account)
        self.pending = Change()

    def _current(self, record_id: str) -> EmailRecord | None:
        if record_id in self.pending.emails_gone:
            return None
        return self.pending.emails.get(record_id) or self.index.emails.get(record_id)

    # -- create ----------------------------------------------------------------------------

    def create(self, ctx: Context, creation_id: str, obj: JSONObject) -> JSONObject:
        account = self.account
        errors = PropertyErrors()
        boxes: set[str] = errors.check(
            lambda: mailbox_ids(account, ctx, obj.get("mailboxIds")), set()
        )
        keywords: frozenset[str] = errors.check(
            lambda: keyword_set(obj.get("keywords", {})), frozenset()
        )
        when = errors.check(lambda: received_at(obj.get("receivedAt")), None)
        raw = b""
        try:
            raw = compose(obj, lambda b: blob_bytes(account, b), max_size=MAX_MESSAGE)
        except ComposeError as exc:
            errors.add(*exc.properties, description=exc.description)
        except MissingBlobs as exc:
            # §4.6: notFound lists every blobId that could not be found.
            raise SetError("blobNotFound", str(exc), notFound=exc.blob_ids) from None
        except TooLarge as exc:
            raise SetError("tooLarge", str(exc)) from None
        errors.raise_any()
        self._flush()  # identical bytes (a fixed Message-ID and Date) are one Email
        return add_email(account, raw, boxes, keywords, when)

    # -- update ----------------------------------------------------------------------------

    def update(self, ctx: Context, record_id: str, patch: JSONObject) -> JSONObject | None:
        rec = self._current(record_id)
        if rec is None:
            raise SetError("notFound")
        wanted = self._parse_patch(ctx, patch)
        for attempt in range(2):
            boxes, edit = wanted.apply(rec)
            if not boxes:
                raise invalid_properties(
                    "mailboxIds", description="an Email must stay in a Mailbox"
                )
            if boxes == rec.mailbox_ids and edit == email_files.KeywordEdit():
                return None
            vanished = sorted(m for m in boxes if m not in self.index.mailboxes)
            if vanished:  # a catch-up found the folder removed by IMAP meanwhile
                raise folders_gone_error(vanished)
            quota = self.account.quota
            if quota is not None and rec.files:
                quota_check(
                    self.account,
                    quota.size_of(self.index, rec, rec.files[0]),
                    rec.mailbox_ids,
                    boxes,
                )
            try:
                new = email_files.place(self.account.maildir, self.index, rec, boxes, edit)
            except email_files.EmailGone:
                # Issue 14: Dovecot may have moved the file to another folder (or a
                # flag change renamed it) since our last reconcile. Catch up with
                # the disk once, then apply the patch to where the Email is now.
                fresh = self._catch_up(record_id) if attempt == 0 else None
                if fresh is None:
                    raise SetError("notFound", "expunged meanwhile") from None
                rec = fresh
                continue
            except TooManyKeywords as exc:
                raise SetError("tooManyKeywords", str(exc)) from None
            except (FileNotFoundError, NotADirectoryError):
                # A folder renamed or deleted under us (IMAP RENAME/DELETE): what
                # was done is on disk (copies are made before anything is removed),
                # so the index catches up before we answer.
                gone = gone_folders(self.account, boxes)
                fresh = self._catch_up(record_id)
                if gone:
                    raise folders_gone_error(gone) from None
                if fresh is None or attempt > 0:
                    raise SetError("notFound", "expunged meanwhile") from None
                rec = fresh
                continue
            if new.files != rec.files or new.keywords != rec.keywords:
                self.pending.emails[record_id] = new
            if quota is not None:
                quota.charge(self.index, [rec], [new])
            return None
        return None

    def _parse_patch(self, ctx: Context, patch: JSONObject) -> _Wanted:
        wanted = _Wanted()
        for tokens, value in parse_patch(patch):
            head = tokens[0]
            if head not in ("keywords", "mailboxIds"):
                if head in PROPERTIES or head.startswith("header:"):
                    raise invalid_properties(head, description="immutable after creation")
                raise invalid_properties(head, description="not an Email property")
            if len(tokens) > 2:
                raise invalid_properties(head, description="patch too deep")
            if len(tokens) == 1:
                if head == "keywords":
                    wanted.keywords = keyword_set(value)
                else:
                    wanted.boxes = mailbox_ids(self.account, ctx, value)
                continue
            key = tokens[1]
            if value is not True and value is not None:
                raise invalid_properties(head, description="patch values are true or null")
            if head == "keywords":
                if not is_keyword(key):
                    raise invalid_properties(head, description=f"not a keyword: {key!r}")
                (wanted.add if value else wanted.remove).add(key.lower())
            elif value:
                wanted.box_add.append(resolve_mailbox(self.account, ctx, key))
            else:
                real = ctx.created_ids.get(key[1:], key) if key.startswith("#") else key
                wanted.box_remove.append(real)
        return wanted

    def _catch_up(self, record_id: str) -> EmailRecord | None:
        """Commit what this call did so far, reconcile the whole account with the
        disk, and return the Email as it is now (None: really gone)."""
        self._flush()
        self.account.rescan()
        return self.index.emails.get(record_id)

    # -- destroy ---------------------------------------------------------------------------

    def destroy(self, ctx: Context, record_id: str, options: JSONObject) -> None:
        rec = self._current(record_id)
        if rec is None:
            raise SetError("notFound")
        email_files.remove(self.account.maildir, self.index, rec)
        if self.account.quota is not None:
            self.account.quota.charge(self.index, [rec], [None])
        self.pending.emails.pop(record_id, None)
        self.pending.emails_gone.add(record_id)

    # -- copy (§4.7) -----------------------------------------------------------------------

    def copy(self, ctx: Context, source: Copyable, creation_id: str, obj: JSONObject) -> JSONObject:
        """One Email from another account: its bytes added here, with mailboxIds
        (required: the accounts' Mailboxes differ) and, when given, keywords and
        receivedAt replacing the original's (RFC 8620 §5.4)."""
        unknown = [k for k in obj if k not in ("id", "mailboxIds", "keywords", "receivedAt")]
        if unknown:
            raise invalid_properties(*unknown, description="§4.7: only these may be set")
        assert isinstance(source, EmailRecords)
        original = source.index.emails.get(obj["id"])
        raw = source.account.read_message(original) if original is not None else None
        if original is None or raw is None:
            raise SetError("notFound", f"no Email {obj['id']!r} in the source account")
        boxes = mailbox_ids(self.account, ctx, obj.get("mailboxIds"))
        keywords = keyword_set(obj["keywords"]) if "keywords" in obj else original.keywords
        when = received_at(obj.get("receivedAt"))
        self._flush()
        return add_email(
            self.account, raw, boxes, keywords, original.received if when is None else when
        )

    def _flush(self) -> None:
        if self.pending:
            change, self.pending = self.pending, Change()
            self.account.commit(change)

    def commit(self) -> None:
        self._flush()


def set_records(ctx: Context, access: AccountAccess) -> EmailSetRecords:
    return EmailSetRecords(account_of(access))


def methods() -> list[Method]:
    return standard.methods(EMAIL_SPEC, set=set_records, copy=set_records)
