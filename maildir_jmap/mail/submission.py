"""EmailSubmission/get, /changes, /query, /queryChanges, /set (RFC 8621 §7).

A create checks the Identity, the Email and its From (``forbiddenFrom``), builds
or checks the envelope, and then either relays at once through
``ctx.outbound`` (delivery/: the configured smarthost) or, for a FUTURERELEASE
hold, puts the message in the account's outbox for the scheduler. The SMTP
replies become ``deliveryStatus``; refusals that leave nothing sent become the
§7.5 SetErrors; 4xx recipients stay queued and are retried. Records live in
the account's object store; ``onSuccessUpdateEmail``/``onSuccessDestroyEmail``
become one implicit Email/set after the call (§7.5).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from maildir_jmap.core import standard
from maildir_jmap.core.capabilities import SUBMISSION
from maildir_jmap.core.dispatch import AccountAccess, Context, Method
from maildir_jmap.core.errors import MethodError, SetError, invalid_properties
from maildir_jmap.core.patch import apply_patch
from maildir_jmap.core.query import Comparator, Descending, matches_filter
from maildir_jmap.core.records import Handler, Kind, TypeSpec
from maildir_jmap.core.types import (
    ArgumentError,
    JSONObject,
    arg_id_list,
    arg_object_map,
    format_utc_date,
    is_creation_ref,
    is_id,
    parse_utc_date,
)
from maildir_jmap.mail import envelope as env
from maildir_jmap.mail.identity import IDENTITY, identities, may_send_from
from maildir_jmap.mail.records import ObjectRecords, account_of
from maildir_jmap.store.account import Account
from maildir_jmap.store.outbox import SUBMISSION_TYPE, Job, Outbox, Outcome

PROPERTIES = (
    "id",
    "identityId",
    "emailId",
    "threadId",
    "envelope",
    "sendAt",
    "undoStatus",
    "deliveryStatus",
    "dsnBlobIds",
    "mdnBlobIds",
)
SERVER_SET = (
    "id",
    "threadId",
    "sendAt",
    "undoStatus",
    "deliveryStatus",
    "dsnBlobIds",
    "mdnBlobIds",
)
SORTABLE = ("emailId", "threadId", "sentAt", "sendAt")  # §7.3 says sentAt; errata sendAt


@runtime_checkable
class Outbound(Protocol):
    """The sending side, provided by the app (delivery/scheduler.py)."""

    max_delayed_send: int
    max_size: int
    max_recipients: int

    def send_now(
        self, mail_from: str, options: list[str], recipients: list[str], message: bytes
    ) -> Outcome: ...

    def schedule(self, account: Account, submission_id: str, due: float) -> None: ...

    def retry_delay(self, attempts: int) -> float: ...


def record_outcome(record: dict[str, object], outcome: Outcome, final: bool) -> None:
    """Update an EmailSubmission record (RFC 8621 §7) after a relay attempt:
    per-recipient ``deliveryStatus``; ``undoStatus`` final once anything was
    relayed or nothing is left to try."""
    status: dict[str, object] = {}
    previous = record.get("deliveryStatus")
    if isinstance(previous, dict):
        status.update(previous)
    for recipient, reply in outcome.replies.items():
        if recipient in outcome.accepted:
            # Relayed: the smarthost has it, and we hear nothing more (no DSNs yet).
            delivered = "unknown"
        elif recipient in outcome.failed or final:
            delivered = "no"
        else:
            delivered = "queued"  # still in our outbox, to be retried
        status[recipient] = {"smtpReply": reply, "delivered": delivered, "displayed": "unknown"}
    record["deliveryStatus"] = status
    if outcome.accepted or final:
        record["undoStatus"] = "final"


def _date(epoch: float) -> str:
    return format_utc_date(datetime.fromtimestamp(int(epoch), UTC))


class SubmissionRecords(ObjectRecords):
    """``core.standard.Records`` for EmailSubmissions."""

    type_name = SUBMISSION_TYPE

    def __init__(self, ctx: Context, account: Account) -> None:
        super().__init__(account)
        self.ctx = ctx
        self.outbox = Outbox(account.state_dir)

    # -- create -----------------------------------------------------------------

    def _outbound(self) -> Outbound:
        outbound = self.ctx.outbound
        if not isinstance(outbound, Outbound):
            raise SetError("forbiddenToSend", "sending is not configured on this server")
        return outbound

    def create(self, ctx: Context, creation_id: str, obj: JSONObject) -> JSONObject:
        unknown = [k for k in obj if k not in PROPERTIES or k in SERVER_SET]
        if unknown:
            raise invalid_properties(*unknown, description="unknown or server-set properties")
        outbound = self._outbound()
        identity = identities(self.account).get(IDENTITY, str(obj.get("identityId")))
        if identity is None:
            raise invalid_properties("identityId", description="no such Identity")
        email_id = obj.get("emailId")
        if is_creation_ref(email_id):
            email_id = ctx.created_ids.get(str(email_id)[1:])
        rec = self.account.index.emails.get(email_id) if isinstance(email_id, str) else None
        raw = self.account.read_message(rec) if rec is not None else None
        if rec is None or raw is None:
            raise invalid_properties("emailId", description="no such Email")
        fields = env.check_from(raw, self.account.addresses)
        if obj.get("envelope") is None:
            envelope = env.derive(fields, identity["email"])
        else:
            envelope = env.parse_envelope(obj["envelope"])
            if not may_send_from(self.account.addresses, envelope.mail_from):
                raise SetError("forbiddenMailFrom", f"you may not use {envelope.mail_from!r}")
        env.check_recipients(envelope, outbound.max_recipients)
        message = env.without_bcc(raw)
        if len(message) > outbound.max_size:
            raise SetError("tooLarge", "the message is too large", maxSize=outbound.max_size)
        now = env.now()
        send_at = env.release_time(envelope.mail_params, outbound.max_delayed_send, now)
        record: dict[str, Any] = {
            "id": self.store.new_id("U"),
            "identityId": identity["id"],
            "emailId": rec.id,
            "threadId": rec.thread_id,
            "envelope": envelope.to_json(),
            "sendAt": _date(send_at),
            "undoStatus": "pending",
            "deliveryStatus": None,
            "dsnBlobIds": [],
            "mdnBlobIds": [],
        }
        job = Job(record["id"], self.account.username, envelope.mail_from, [],
                  envelope.rcpt_to, send_at, now)  # fmt: skip
        if send_at > now:
            # Held here (FUTURERELEASE without asking the smarthost), cancelable until due.
            held = Outcome(
                replies={r: "250 2.0.0 held for delayed sending" for r in envelope.rcpt_to}
            )
            record_outcome(record, held, final=False)
            self.outbox.add(job, message)
            outbound.schedule(self.account, record["id"], send_at)
        else:
            outcome = outbound.send_now(envelope.mail_from, [], envelope.rcpt_to, message)
            self._refusal(outcome, outbound)
            record_outcome(record, outcome, final=False)
            if outcome.retry:
                job.recipients, job.attempts = list(outcome.retry), 1
                job.due = now + outbound.retry_delay(1)
                job.last_replies = {r: outcome.replies[r] for r in outcome.retry}
                self.outbox.add(job, message)
                outbound.schedule(self.account, record["id"], job.due)
            else:
                record["undoStatus"] = "final"
        self.store.put(SUBMISSION_TYPE, record)
        created = {k: record[k] for k in SERVER_SET}
        if obj.get("envelope") is None:
            created["envelope"] = record["envelope"]
        return created

    @staticmethod
    def _refusal(outcome: Outcome, outbound: Outbound) -> None:
        """Nothing relayed and nothing to retry: the §7.5 SetError saying why."""
        if outcome.accepted or outcome.retry:
            return
        if outcome.forbidden:
            raise SetError("forbiddenToSend", f"the mail relay refused us: {outcome.forbidden}")
        if outcome.sender_refused:
            reply = next(iter(outcome.replies.values()), "")
            raise SetError("forbiddenMailFrom", reply)
        if outcome.too_large:
            raise SetError("tooLarge", "the smarthost refused the size", maxSize=outbound.max_size)
        raise SetError(
            "invalidRecipients",
            "; ".join(f"{r}: {outcome.replies.get(r, '')}" for r in outcome.failed),
            invalidRecipients=list(outcome.failed),
        )

    # -- update, destroy --------------------------------------------------------

    def update(self, ctx: Context, record_id: str, patch: JSONObject) -> JSONObject | None:
        current = self.store.get(SUBMISSION_TYPE, record_id)
        if current is None:
            raise SetError("notFound")
        patched = apply_patch(current, patch)
        changed = [k for k in PROPERTIES if patched.get(k) != current.get(k)]
        if [k for k in changed if k != "undoStatus"] or set(patched) - set(PROPERTIES):
            raise invalid_properties(*changed, description="only undoStatus can be set")
        if "undoStatus" in changed:
            if patched["undoStatus"] != "canceled":
                raise invalid_properties("undoStatus", description="only 'canceled' can be set")
            job = self.outbox.get(record_id)
            if current["undoStatus"] != "pending" or job is None or job.sending:
                raise SetError("cannotUnsend", "the message has already been relayed")
            self.outbox.remove(record_id)
            canceled = Outcome(
                replies={r: "554 5.0.0 canceled before sending" for r in job.recipients},
                failed=list(job.recipients),
            )
            record_outcome(patched, canceled, final=True)
            patched["undoStatus"] = "canceled"
            self.store.put(SUBMISSION_TYPE, patched)
        return None

    def destroy(self, ctx: Context, record_id: str, options: JSONObject) -> None:
        """§7.5: forgets the record; a queued send still goes out."""
        current = self.store.get(SUBMISSION_TYPE, record_id)
        if current is None:
            raise SetError("notFound")
        self.store.drop(SUBMISSION_TYPE, record_id)

    # -- query ------------------------------------------------------------------

    def related_changes(self, since_state: str, options: JSONObject) -> set[str]:
        return set()  # a submission's place in the results changes only with itself

    def query(self, filter: Any, sort: list[Comparator], options: JSONObject) -> list[str]:
        records = [
            r
            for r in self.store.all(SUBMISSION_TYPE)
            if matches_filter(filter, functools.partial(_matches, r))
        ]

        def key(record: dict[str, Any]) -> tuple[Any, ...]:
            parts: list[Any] = []
            for comparator in sort:
                name = "sendAt" if comparator.property == "sentAt" else comparator.property
                value = record[name]
                parts.append(value if comparator.is_ascending else Descending(value))
            return (*parts, record["sendAt"], record["id"])

        return [r["id"] for r in sorted(records, key=key)]


def _matches(record: dict[str, Any], filter: JSONObject) -> bool:
    """One §7.3 FilterCondition."""
    send_at = parse_utc_date(record["sendAt"])
    for key, value in filter.items():
        if key in ("identityIds", "emailIds", "threadIds"):
            if record[key[:-1]] not in value:
                return False
        elif key == "undoStatus":
            if record["undoStatus"] != value:
                return False
        elif key == "before":
            if send_at >= parse_utc_date(value):
                return False
        elif key == "after" and send_at < parse_utc_date(value):
            return False
    return True


def check_condition(condition: JSONObject) -> None:
    """§7.3 FilterCondition."""
    for key, value in condition.items():
        if key in ("identityIds", "emailIds", "threadIds"):
            if not isinstance(value, list) or not all(is_id(v) for v in value):
                raise ArgumentError(f"{key} must be an Id[]")
        elif key == "undoStatus":
            if value not in ("pending", "final", "canceled"):
                raise ArgumentError("undoStatus must be pending, final or canceled")
        elif key in ("before", "after"):
            parse_utc_date(value)
        else:
            raise MethodError("unsupportedFilter", f"EmailSubmission has no filter {key!r}")


def records_for(ctx: Context, access: AccountAccess) -> SubmissionRecords:
    return SubmissionRecords(ctx, account_of(access))


SPEC = TypeSpec(
    name=SUBMISSION_TYPE,
    capability=SUBMISSION,
    is_property=lambda p: p in PROPERTIES,
    default_properties=PROPERTIES,
    check_condition=check_condition,
    sortable=SORTABLE,
)
ON_SUCCESS = ("onSuccessUpdateEmail", "onSuccessDestroyEmail")


def _on_success_arguments(args: JSONObject) -> tuple[dict[str, Any], list[str]]:
    update = args.get("onSuccessUpdateEmail") or {}
    destroy = args.get("onSuccessDestroyEmail") or []
    if not isinstance(update, dict) or not all(
        (is_id(k) or is_creation_ref(k)) and isinstance(v, dict) for k, v in update.items()
    ):
        raise ArgumentError("onSuccessUpdateEmail must be an Id[PatchObject]")
    if not isinstance(destroy, list) or not all(is_id(k) or is_creation_ref(k) for k in destroy):
        raise ArgumentError("onSuccessDestroyEmail must be an Id[]")
    return update, destroy


def on_success(ctx: Context, args: JSONObject, set_: Handler) -> JSONObject:
    """RFC 8621 §7.5: EmailSubmission/set, then an implicit Email/set updating or
    destroying the Emails of the submissions that succeeded."""
    update, destroy = _on_success_arguments(args)
    account_id = args.get("accountId")
    account = account_of(ctx.account(str(account_id), SUBMISSION))
    # Type-check update and destroy before peeking into them (standard.set_ checks
    # them again, with the same errors).
    own_updates = arg_object_map(args, "update", refs=True)
    own_destroys = arg_id_list(args, "destroy", allow_refs=True) or []
    # emailId is immutable: read it now, before a destroy removes the record.
    emails: dict[str, str] = {}
    for record_id in [*own_updates, *own_destroys]:
        record = account.objects.get(SUBMISSION_TYPE, record_id) if is_id(record_id) else None
        if record is not None:
            emails[record_id] = record["emailId"]
    result = set_(ctx, args)
    succeeded = set(result["updated"] or {}) | set(result["destroyed"] or [])
    emails = {k: v for k, v in emails.items() if k in succeeded}
    for creation_id, created in (result["created"] or {}).items():
        record = account.objects.get(SUBMISSION_TYPE, created["id"])
        if record is not None:
            emails["#" + creation_id] = record["emailId"]
    email_update = {emails[k]: patch for k, patch in update.items() if k in emails}
    email_destroy = list(dict.fromkeys(emails[k] for k in destroy if k in emails))
    if email_update or email_destroy:
        implicit: JSONObject = {"accountId": result["accountId"]}
        if email_update:
            implicit["update"] = email_update
        if email_destroy:
            implicit["destroy"] = email_destroy
        ctx.queue_implicit("Email/set", implicit)
    return result


def methods() -> list[Method]:
    return standard.methods(
        SPEC,
        get=records_for,
        changes=records_for,
        query=records_for,
        set=Kind(records_for, extra=ON_SUCCESS, around=on_success),
    )
