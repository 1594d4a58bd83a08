"""The Session resource (RFC 8620 §2)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

import orjson

from maildir_jmap.core.capabilities import CORE
from maildir_jmap.core.dispatch import AccountAccess
from maildir_jmap.core.types import JSONObject

API_PATH = "/jmap/api/"
DOWNLOAD_PATH = "/jmap/download/{accountId}/{blobId}/{name}?accept={type}"
UPLOAD_PATH = "/jmap/upload/{accountId}/"
EVENTSOURCE_PATH = "/jmap/eventsource/?types={types}&closeafter={closeafter}&ping={ping}"


def build_session(
    *,
    username: str,
    base_url: str,
    capabilities: Mapping[str, JSONObject],
    accounts: Iterable[AccountAccess],
) -> JSONObject:
    """The Session object. URLs are absolute (several client libraries do not
    resolve relative ones); ``type`` sits in the query as §2 recommends.

    ``state`` is a digest of everything else, so it changes exactly when the
    Session does (§2)."""
    base = base_url.rstrip("/")
    accounts = list(accounts)
    primary: dict[str, str] = {}
    for access in accounts:
        if access.is_personal:
            for capability in access.capabilities:
                # §2: core "SHOULD NOT be present" in primaryAccounts.
                if capability != CORE:
                    primary.setdefault(capability, access.account_id)
    session: JSONObject = {
        "capabilities": dict(capabilities),
        "accounts": {a.account_id: a.session_entry() for a in accounts},
        "primaryAccounts": primary,
        "username": username,
        "apiUrl": base + API_PATH,
        "downloadUrl": base + DOWNLOAD_PATH,
        "uploadUrl": base + UPLOAD_PATH,
        "eventSourceUrl": base + EVENTSOURCE_PATH,
    }
    digest = hashlib.sha256(orjson.dumps(session, option=orjson.OPT_SORT_KEYS)).hexdigest()
    session["state"] = digest[:16]
    return session
