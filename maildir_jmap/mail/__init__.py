"""RFC 8621 datatypes. Each module declares its methods (``methods()``);
server/registry.py assembles them. Here: the capability objects the mail
datatypes put in the Session."""

from __future__ import annotations

from maildir_jmap.core.capabilities import CORE, MAIL, SUBMISSION
from maildir_jmap.core.dispatch import Registry
from maildir_jmap.core.types import JSONObject
from maildir_jmap.mail import email_filter
from maildir_jmap.mail.mailbox_set import MAX_DEPTH
from maildir_jmap.store.account import Account
from maildir_jmap.store.names import MAX_NAME_BYTES


def session_capabilities(registry: Registry) -> dict[str, JSONObject]:
    """Capability objects beyond core for the Session (RFC 8621 §1.3.1: mail's is
    empty at the server level)."""
    return {capability: {} for capability in registry.capabilities() - {CORE}}


def account_capabilities(
    registry: Registry, account: Account, sending: JSONObject | None = None
) -> dict[str, JSONObject]:
    """Per-account capability objects; ``sending`` is the submission one (RFC 8621
    §1.3.2: maxDelayedSend, submissionExtensions), from the app's settings."""
    out: dict[str, JSONObject] = {}
    for capability in registry.capabilities() - {CORE}:
        if capability == MAIL:
            out[MAIL] = {
                "maxMailboxesPerEmail": None,
                "maxMailboxDepth": MAX_DEPTH,
                "maxSizeMailboxName": MAX_NAME_BYTES,
                "maxSizeAttachmentsPerEmail": 50_000_000,
                "emailQuerySortOptions": list(email_filter.SORTABLE),
                "mayCreateTopLevelMailbox": True,
            }
        elif capability == SUBMISSION:
            out[SUBMISSION] = dict(sending or {"maxDelayedSend": 0, "submissionExtensions": {}})
        else:
            out[capability] = {}
    return out
