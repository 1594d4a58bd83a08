"""One JMAP method call through the sans-IO core against an open Account, as the
HTTP layer would make it (the account's lock held for the call)."""

from __future__ import annotations

from typing import Any

from maildir_jmap.core.capabilities import CORE, MAIL, CoreLimits
from maildir_jmap.core.dispatch import AccountAccess, Context, process
from maildir_jmap.core.request import request_from_json
from maildir_jmap.server.registry import build_registry
from maildir_jmap.store.account import Account

REGISTRY = build_registry()


def invoke(account: Account, name: str, **args: Any) -> tuple[str, dict[str, Any]]:
    """(response name, arguments): "error" and its arguments for a method error."""
    access = AccountAccess(account.account_id, account.username, {MAIL: {}}, backend=account)
    limits = CoreLimits()
    ctx = Context(account.username, {account.account_id: access}, limits, registry=REGISTRY)
    calls = [[name, {"accountId": account.account_id, **args}, "c"]]
    request = request_from_json(
        {"using": [CORE, MAIL], "methodCalls": calls}, limits, REGISTRY.capabilities()
    )
    with account.lock:
        ((method, result, _),) = process(request, ctx, REGISTRY)["methodResponses"]
    return method, result
