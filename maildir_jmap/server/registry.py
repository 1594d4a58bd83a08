"""The one place the method registry is assembled: which methods this server
offers, and so which capabilities the Session advertises. Only what is fully
implemented is registered: ``urn:ietf:params:jmap:mail`` covers Mailbox, Thread,
Email and SearchSnippet, reads and writes alike; ``urn:ietf:params:jmap:submission``
covers Identity and EmailSubmission; PushSubscription (RFC 8620 §7.2) is core;
VacationResponse (RFC 8621 §8) only takes effect through Pigeonhole, so it is
offered only when a Sieve location is configured; Quota (RFC 9425) only when
Dovecot's quota plugin is on.
"""

from __future__ import annotations

from maildir_jmap.core.dispatch import CORE_METHODS, Method, Registry
from maildir_jmap.mail import (
    blobs,
    email,
    email_import,
    email_query,
    email_set,
    identity,
    mailbox_set,
    quota,
    snippet,
    submission,
    vacation,
)
from maildir_jmap.sync import push_subscription


def build_registry(*, vacation_response: bool = False, quotas: bool = False) -> Registry:
    registry = Registry(CORE_METHODS)
    methods: list[Method] = [
        *mailbox_set.methods(),
        *email.methods(),
        *email_query.methods(),
        *email_set.methods(),
        *email_import.methods(),
        *snippet.methods(),
        *blobs.methods(),
        *identity.methods(),
        *submission.methods(),
        *push_subscription.methods(),
    ]
    if vacation_response:
        methods += vacation.methods()
    if quotas:
        methods += quota.methods()
    for method in methods:
        registry.add(method)
    return registry
