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


def capabilities_digest(capabilities: Mapping[str, JSONObject]) -> str:
    """What ``build_session``'s state takes of the server's capabilities; a caller
    that keeps the same capabilities keeps this too (every API response names the
    Session's state, and the capabilities are most of its bytes)."""
    return hashlib.sha256(orjson.dumps(capabilities, option=orjson.OPT_SORT_KEYS)).hexdigest()


def build_session(
    *,
    username: str,
    base_url: str,
    capabilities: Mapping[str, JSONObject],
    accounts: Iterable[AccountAccess],
    digest_of_capabilities: str | None = None,
) -> JSONObject:
    """The Session object. URLs are absolute (several client libraries do not
    resolve relative ones); ``type`` sits in the query as §2 recommends.

    ``state`` is a digest of everything else, so it changes exactly when the
    Session does (§2); ``digest_of_capabilities`` is ``capabilities_digest`` of
    ``capabilities``, when the caller kept it."""
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
        "accounts": {a.account_id: a.session_entry() for a in accounts},
        "primaryAccounts": primary,
        "username": username,
        "apiUrl": base + API_PATH,
        "downloadUrl": base + DOWNLOAD_PATH,
        "uploadUrl": base + UPLOAD_PATH,
        "eventSourceUrl": base + EVENTSOURCE_PATH,
    }
    kept = digest_of_capabilities or capabilities_digest(capabilities)
    rest = orjson.dumps(session, option=orjson.OPT_SORT_KEYS)
    session["state"] = hashlib.sha256(kept.encode() + rest).hexdigest()[:16]
    return {"capabilities": dict(capabilities), **session}
