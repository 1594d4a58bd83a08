"""The Session object (RFC 8620 §2)."""

from __future__ import annotations

from maildir_jmap.core.capabilities import CORE, CoreLimits
from maildir_jmap.core.dispatch import AccountAccess
from maildir_jmap.core.session import build_session

MAIL = "urn:ietf:params:jmap:mail"


def session(**overrides: object) -> dict[str, object]:
    args: dict[str, object] = {
        "username": "alice",
        "base_url": "https://jmap.example/",
        "capabilities": {CORE: CoreLimits().capability()},
        "accounts": [AccountAccess("A1", "alice", {MAIL: {}})],
    }
    args.update(overrides)
    return build_session(**args)  # type: ignore[arg-type]


def test_session_urls_are_absolute_templates_rfc8620_2() -> None:
    s = session()
    assert s["apiUrl"] == "https://jmap.example/jmap/api/"
    assert s["downloadUrl"] == (
        "https://jmap.example/jmap/download/{accountId}/{blobId}/{name}?accept={type}"
    )
    assert s["uploadUrl"] == "https://jmap.example/jmap/upload/{accountId}/"
    assert s["eventSourceUrl"] == (
        "https://jmap.example/jmap/eventsource/?types={types}&closeafter={closeafter}&ping={ping}"
    )
    for variable in ("{accountId}", "{blobId}", "{type}", "{name}"):
        assert variable in s["downloadUrl"]  # type: ignore[operator]


def test_session_core_capability_has_every_limit_rfc8620_2() -> None:
    core = session()["capabilities"][CORE]  # type: ignore[index]
    for key in (
        "maxSizeUpload",
        "maxConcurrentUpload",
        "maxSizeRequest",
        "maxConcurrentRequests",
        "maxCallsInRequest",
        "maxObjectsInGet",
        "maxObjectsInSet",
        "collationAlgorithms",
    ):
        assert key in core
    assert core["maxSizeRequest"] >= 10_000_000  # the RFC's suggested minimums
    assert core["maxCallsInRequest"] >= 16


def test_session_accounts_and_primary_accounts_rfc8620_2() -> None:
    s = session()
    assert s["accounts"] == {
        "A1": {
            "name": "alice",
            "isPersonal": True,
            "isReadOnly": False,
            "accountCapabilities": {MAIL: {}},
        }
    }
    assert s["primaryAccounts"] == {MAIL: "A1"}  # core SHOULD NOT be present
    assert s["username"] == "alice"


def test_session_state_changes_when_the_session_does_rfc8620_2() -> None:
    same = session()["state"]
    assert session()["state"] == same
    other = session(accounts=[AccountAccess("A1", "alice", {MAIL: {}}, is_read_only=True)])
    assert other["state"] != same
    assert session(username="bob")["state"] != same
