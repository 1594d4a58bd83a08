"""Capability URNs, the core limits we advertise, and `using` checks (RFC 8620 §2, §3.3)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from maildir_jmap.core.errors import RequestError
from maildir_jmap.core.types import JSONObject

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
SUBMISSION = "urn:ietf:params:jmap:submission"
VACATION = "urn:ietf:params:jmap:vacationresponse"
QUOTA = "urn:ietf:params:jmap:quota"
WEBSOCKET = "urn:ietf:params:jmap:websocket"

# RFC 4790 collations implemented by core/query.py.
COLLATIONS = ("i;ascii-numeric", "i;ascii-casemap", "i;unicode-casemap")


@dataclass(frozen=True)
class CoreLimits:
    """The ``urn:ietf:params:jmap:core`` capability object (§2); defaults meet the
    RFC's suggested minimums."""

    maxSizeUpload: int = 50_000_000
    maxConcurrentUpload: int = 4
    maxSizeRequest: int = 10_000_000
    maxConcurrentRequests: int = 8
    maxCallsInRequest: int = 64
    maxObjectsInGet: int = 5000
    """A 45,000-message INBOX's list view in one request of 9 Email/query + Email/get
    pairs (issue 18: an initial sync in fewer round trips than IMAP). The largest
    response it allows is bounded by what the user keeps: Email/get of 5,000 whole
    messages holds at most their text parts (each at most 256k characters kept)."""
    maxObjectsInSet: int = 1000

    def capability(self) -> JSONObject:
        body: JSONObject = asdict(self)
        body["collationAlgorithms"] = list(COLLATIONS)
        return body


def check_using(using: Iterable[str], supported: Iterable[str]) -> frozenset[str]:
    """§3.6.1: an unsupported URN is a request error.

    A ``using`` without core (even ``[]``) is still a Request: §3.3 says the client
    MUST include core, and the consequence the RFC names is per call, "if [a
    method's capability] is not in the using array, the server MUST respond with
    unknownMethod" (§3.6.2), so every call gets ``unknownMethod`` (Core/echo
    included) rather than the whole request failing."""
    used = frozenset(using)
    known = frozenset(supported)
    unknown = sorted(used - known)
    if unknown:
        raise RequestError(
            "unknownCapability",
            f"The Request object used capability '{unknown[0]}', "
            "which is not supported by this server.",
        )
    return used
