"""RFC 8621 datatypes. Each module contributes its methods to the registry built
here; only what is fully implemented is registered (and so advertised): the
``urn:ietf:params:jmap:mail`` capability covers Mailbox, Thread, Email and
SearchSnippet, reads and writes alike; ``urn:ietf:params:jmap:submission``
covers Identity and EmailSubmission.
"""

from __future__ import annotations

from maildir_jmap.core.capabilities import CORE, MAIL, SUBMISSION
from maildir_jmap.core.dispatch import CORE_METHODS, Registry
from maildir_jmap.core.types import JSONObject
from maildir_jmap.mail import (
    blobs,
    email,
    email_import,
    email_query,
    email_set,
    identity,
    mailbox,
    snippet,
    submission,
)
from maildir_jmap.mail.mailbox_set import MAX_DEPTH
from maildir_jmap.store.account import Account
from maildir_jmap.store.names import MAX_NAME_BYTES


def build_registry() -> Registry:
    registry = Registry(CORE_METHODS)
    methods = [*mailbox.methods(), *email.methods(), *email_query.methods()]
    methods += [*email_set.methods(), *email_import.methods(), *snippet.methods()]
    methods += blobs.methods()
    methods += [*identity.methods(), *submission.methods()]
    for method in methods:
        registry.add(method)
    return registry


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
                "emailQuerySortOptions": list(email_query.SORTABLE),
                "mayCreateTopLevelMailbox": True,
            }
        elif capability == SUBMISSION:
            out[SUBMISSION] = dict(sending or {"maxDelayedSend": 0, "submissionExtensions": {}})
        else:
            out[capability] = {}
    return out
